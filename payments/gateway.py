"""The adapter to Stripe. It knows no database and no Flask request: plain values in, small
frozen dataclasses out, so the rest of the app never touches an SDK object.

It speaks to Stripe through ``stripe.StripeClient`` (SDK 16) with a configurable API base
(localstripe in development and tests) and a pinned API version. Every write carries an
idempotency key derived from our own business object; real Stripe honours it, localstripe does
not, which is why ``payments.service`` also guards against double charges with its own rows.
"""

import contextlib
from dataclasses import dataclass
from typing import Any

import stripe

# Bounds the metadata search of the reconciliation sweep (see find_payment_intent_by_metadata).
_SEARCH_PAGE = 100
_SEARCH_MAX_PAGES = 20


class StripeRejected(Exception):
    """Stripe refused the request itself (a missing customer, a bad parameter): final."""

    def __init__(self, message: str, code: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class PaymentDeclined(StripeRejected):
    """The card or the bank said no; the payment is failed with this reason."""

    def __init__(
        self, message: str, code: str | None, decline_code: str | None, intent_id: str | None
    ) -> None:
        super().__init__(message, code)
        self.decline_code = decline_code
        self.intent_id = intent_id


class AuthenticationRequired(PaymentDeclined):
    """An off-session charge needs the customer present (3-D Secure): ask them in the app."""


class GatewayUnavailable(Exception):
    """Stripe could not be reached or failed; the outcome is unknown, so leave it pending."""


class InvalidWebhook(Exception):
    """A webhook whose signature or payload does not verify."""


@dataclass(frozen=True)
class SetupResult:
    id: str
    status: str
    payment_method_id: str
    brand: str | None
    last4: str | None


@dataclass(frozen=True)
class IntentResult:
    id: str
    status: str
    amount: int
    amount_received: int
    currency: str
    last_error_code: str | None
    last_error_message: str | None
    decline_code: str | None
    metadata: dict[str, str]


@dataclass(frozen=True)
class RefundResult:
    id: str
    status: str
    amount: int


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    object_id: str | None
    object_type: str | None
    created: int


class StripeGateway:
    """Every call our app makes to Stripe."""

    def __init__(
        self,
        secret_key: str,
        api_base: str | None,
        api_version: str,
        webhook_secret: str | None,
        max_network_retries: int = 2,
    ) -> None:
        self._client = stripe.StripeClient(
            secret_key or "sk_test_not_configured",
            stripe_version=api_version,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
        )
        self._webhook_secret = webhook_secret

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the SDK, mapping its errors to ours."""
        try:
            return method(*args, **kwargs)
        except stripe.CardError as error:
            raise _declined(error) from error
        except stripe.InvalidRequestError as error:
            message = error.user_message or "Stripe refused the request."
            raise StripeRejected(message, error.code) from error
        except (stripe.APIConnectionError, stripe.RateLimitError) as error:
            raise GatewayUnavailable(str(error)) from error
        except stripe.APIError as error:  # Stripe's own 5xx: outcome unknown
            raise GatewayUnavailable(str(error)) from error

    def create_customer(
        self, *, email: str, name: str, citizen_id: str, idempotency_key: str
    ) -> str:
        """Create a Stripe customer for a citizen; returns its id."""
        customer = self._call(
            self._client.v1.customers.create,
            params={"email": email, "name": name, "metadata": {"citizen_id": citizen_id}},
            options={"idempotency_key": idempotency_key},
        )
        return str(customer.id)

    def create_setup_intent(
        self, *, customer_id: str, payment_method: str, idempotency_key: str
    ) -> SetupResult:
        """Save a card for off-session use: create a SetupIntent, then confirm it with the card."""
        intents = self._client.v1.setup_intents
        setup = self._call(
            intents.create,
            params={"customer": customer_id, "usage": "off_session"},
            options={"idempotency_key": idempotency_key},
        )
        setup = self._call(
            intents.confirm,
            setup.id,
            params={"payment_method": payment_method},
            options={"idempotency_key": f"{idempotency_key}-confirm"},
        )
        if setup.status != "succeeded":
            raise PaymentDeclined(
                "The card needs authentication before it can be saved.",
                "authentication_required",
                None,
                None,
            )
        card = self._call(self._client.v1.payment_methods.retrieve, setup.payment_method).card
        return SetupResult(
            id=setup.id,
            status=setup.status,
            payment_method_id=str(setup.payment_method),
            brand=getattr(card, "brand", None),
            last4=getattr(card, "last4", None),
        )

    def detach_payment_method(self, payment_method_id: str) -> None:
        """Detach a saved card from its customer (a card never attached is fine too)."""
        # Not attached (localstripe does not attach on SetupIntent) means nothing to undo.
        with contextlib.suppress(StripeRejected):
            self._call(self._client.v1.payment_methods.detach, payment_method_id)

    def create_payment_intent(
        self,
        *,
        amount: int,
        currency: str,
        customer_id: str,
        payment_method: str,
        off_session: bool,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> IntentResult:
        """Create and confirm a PaymentIntent (the method is set at creation)."""
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "customer": customer_id,
            "payment_method": payment_method,
            "confirm": True,
            "metadata": metadata,
        }
        if off_session:
            params["off_session"] = True
        intent = self._call(
            self._client.v1.payment_intents.create,
            params=params,
            options={"idempotency_key": idempotency_key},
        )
        return _intent(intent)

    def retrieve_payment_intent(self, intent_id: str) -> IntentResult:
        return _intent(self._call(self._client.v1.payment_intents.retrieve, intent_id))

    def find_payment_intent_by_metadata(self, key: str, value: str) -> IntentResult | None:
        """The PaymentIntent whose metadata ``key`` is ``value``, if Stripe has one.

        Heals a crash after Stripe created an intent but before we stored its id. Real Stripe
        offers a search API, but it is eventually consistent (seconds to minutes behind) and
        localstripe lacks it, so this pages through the most recent intents instead (bounded:
        the sweep only looks for payments a few minutes old).
        """
        starting_after: str | None = None
        for _ in range(_SEARCH_MAX_PAGES):
            params: dict[str, Any] = {"limit": _SEARCH_PAGE}
            if starting_after:
                params["starting_after"] = starting_after
            page = self._call(self._client.v1.payment_intents.list, params=params)
            for intent in page.data:
                if _metadata(intent).get(key) == value:
                    return _intent(intent)
            if not page.has_more or not page.data:
                return None
            starting_after = page.data[-1].id
        return None

    def create_refund(
        self,
        *,
        payment_intent_id: str,
        amount: int,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> RefundResult:
        """Refund part or all of a PaymentIntent. Our free-text reason travels in metadata
        (Stripe's own ``reason`` is an enum, and localstripe rejects the field)."""
        try:
            refund = self._call(
                self._client.v1.refunds.create,
                params={
                    "payment_intent": payment_intent_id,
                    "amount": amount,
                    "metadata": metadata,
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.InvalidRequestError as error:
            raise PaymentDeclined(
                error.user_message or str(error), error.code, None, None
            ) from error
        return RefundResult(id=refund.id, status=refund.status, amount=refund.amount)

    def find_refund(self, payment_intent_id: str, refund_id: str) -> RefundResult | None:
        """The refund of an intent whose ``refund_id`` metadata is ours (a crash before we
        stored Stripe's id), if Stripe has one. An intent has few refunds: one page holds them."""
        page = self._call(
            self._client.v1.refunds.list,
            params={"payment_intent": payment_intent_id, "limit": _SEARCH_PAGE},
        )
        for refund in page.data:
            if _metadata(refund).get("refund_id") == refund_id:
                return RefundResult(id=refund.id, status=refund.status, amount=refund.amount)
        return None

    def retrieve_refund(self, refund_id: str) -> RefundResult:
        refund = self._call(self._client.v1.refunds.retrieve, refund_id)
        return RefundResult(id=refund.id, status=refund.status, amount=refund.amount)

    def construct_event(
        self, payload: bytes, sig_header: str, tolerance: int = 300
    ) -> WebhookEvent:
        """Verify the Stripe-Signature over the raw body and parse the event."""
        if not self._webhook_secret:
            raise InvalidWebhook("no webhook secret is configured")
        try:
            event = stripe.Webhook.construct_event(
                payload, sig_header, self._webhook_secret, tolerance=tolerance
            )
        except stripe.SignatureVerificationError as error:
            raise InvalidWebhook(f"signature: {error}") from error
        except ValueError as error:
            raise InvalidWebhook(f"payload: {error}") from error
        obj = event.data.object if getattr(event, "data", None) else None
        return WebhookEvent(
            id=event.id,
            type=event.type,
            object_id=getattr(obj, "id", None),
            object_type=getattr(obj, "object", None),
            created=int(event.created),
        )


def _intent(intent: Any) -> IntentResult:
    error = intent.last_payment_error
    return IntentResult(
        id=intent.id,
        status=intent.status,
        amount=intent.amount,
        amount_received=getattr(intent, "amount_received", None) or 0,
        currency=intent.currency,
        last_error_code=getattr(error, "code", None) if error else None,
        last_error_message=getattr(error, "message", None) if error else None,
        decline_code=getattr(error, "decline_code", None) if error else None,
        metadata=_metadata(intent),
    )


def _metadata(obj: Any) -> dict[str, str]:
    metadata = getattr(obj, "metadata", None)
    return {str(k): str(v) for k, v in metadata.to_dict().items()} if metadata else {}


def _declined(error: stripe.CardError) -> PaymentDeclined:
    """A CardError as ours; Stripe's ``authentication_required`` gets its own class."""
    body = error.json_body or {}
    details = body.get("error", {}) if isinstance(body, dict) else {}
    intent = details.get("payment_intent") or {}
    intent_id = intent.get("id") if isinstance(intent, dict) else None
    cls = AuthenticationRequired if error.code == "authentication_required" else PaymentDeclined
    message = error.user_message or details.get("message") or "Your card was declined."
    return cls(message, error.code, details.get("decline_code"), intent_id)
