"""The adapter to Stripe. It knows no database and no Flask request: plain values in, small
frozen dataclasses out, so the rest of the app never touches an SDK object or an SDK error.

It speaks to Stripe through ``stripe.StripeClient`` (SDK 16) with a configurable API base
(localstripe in development and tests) and a pinned API version. Every write carries an
idempotency key derived from our own business object; real Stripe honours it, localstripe does
not, which is why ``payments.service`` also guards against double charges with its own rows.

Errors, by what the caller should do:

- :class:`PaymentDeclined` (and :class:`AuthenticationRequired`): the card or bank said no;
  fail the payment with this reason.
- :class:`StripeRejected`: Stripe refused the request itself (bad parameter, unknown object);
  final, nothing happened.
- :class:`GatewayUnavailable`: Stripe could not be reached or failed; the outcome is unknown,
  leave the payment pending for the reconciliation sweep.
- :class:`InvalidWebhook`: a webhook body whose signature or payload does not verify.
"""

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import stripe

T = TypeVar("T")

# Bounds the metadata search of the reconciliation sweep (see find_payment_intent_by_metadata).
_SEARCH_PAGE = 100
_SEARCH_MAX_PAGES = 20
# The only values Stripe accepts in a refund's ``reason``.
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
# Card only: on API versions with automatic payment methods on by default, a server-side
# confirmation would otherwise demand a return_url. localstripe accepts this field too.
_CARD_ONLY = ["card"]


class StripeRejected(Exception):
    """Stripe refused the request itself (a missing customer, a bad parameter): final."""

    def __init__(self, message: str, code: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class PaymentDeclined(StripeRejected):
    """The card or the bank said no; the payment is failed with this reason.

    ``intent_id`` is the PaymentIntent Stripe created for the attempt, when known.
    """

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


class SearchIncomplete(GatewayUnavailable):
    """A metadata search hit its page bound before the end: absence is not proven."""


class InvalidWebhook(Exception):
    """A webhook whose signature or payload does not verify."""


@dataclass(frozen=True)
class SetupResult:
    id: str
    status: str
    payment_method_id: str
    brand: str | None
    last4: str | None
    customer_id: str | None = None  # the customer the card is attached to (None: localstripe)


@dataclass(frozen=True)
class PaymentMethodResult:
    id: str
    customer_id: str | None  # the customer it is attached to, if any


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
    client_secret: str | None = None  # what the app needs to finish 3-D Secure (requires_action)


@dataclass(frozen=True)
class RefundResult:
    id: str
    status: str  # pending, requires_action, succeeded, failed, canceled
    amount: int
    payment_intent_id: str | None = None
    charge_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


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
        *,
        max_network_retries: int = 2,
        timeout: float = 30.0,
    ) -> None:
        """``api_base`` None means Stripe itself. ``max_network_retries``: the SDK retries
        connection errors, 409s and 5xx, safely with Stripe since every write carries an
        idempotency key (localstripe ignores the key, but answers 5xx only for what it does
        not implement). ``timeout`` bounds each HTTP request, in seconds (the SDK's is 80)."""
        self._client = stripe.StripeClient(
            secret_key or "sk_test_not_configured",
            stripe_version=api_version,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )
        self._webhook_secret = webhook_secret

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the SDK, mapping its errors to ours."""
        try:
            return method(*args, **kwargs)
        except stripe.CardError as error:
            raise self._declined(error) from error
        except (stripe.InvalidRequestError, stripe.IdempotencyError) as error:
            message = error.user_message or "Stripe refused the request."
            raise StripeRejected(message, error.code) from error
        except stripe.StripeError as error:  # unreachable, 5xx, rate limit, our key refused
            raise GatewayUnavailable(f"{type(error).__name__}: {error}") from error

    def create_customer(
        self, *, email: str, name: str, citizen_id: str, idempotency_key: str
    ) -> str:
        """Create a Stripe customer for a citizen (``metadata.citizen_id``); returns its id."""
        customer = self._call(
            self._client.v1.customers.create,
            params={"email": email, "name": name, "metadata": {"citizen_id": citizen_id}},
            options={"idempotency_key": idempotency_key},
        )
        return customer.id

    def create_setup_intent(
        self, *, customer_id: str, payment_method: str, idempotency_key: str
    ) -> SetupResult:
        """Save a card for off-session charges: a SetupIntent, confirmed with the card.

        Created then confirmed in two calls, because localstripe refuses ``payment_method`` and
        ``confirm`` at creation. A declined card raises :class:`PaymentDeclined`; a card that
        needs 3-D Secure first raises :class:`AuthenticationRequired`.
        """
        intents = self._client.v1.setup_intents
        setup = self._call(
            intents.create,
            params={
                "customer": customer_id,
                "usage": "off_session",
                "payment_method_types": _CARD_ONLY,
            },
            options={"idempotency_key": idempotency_key},
        )
        setup = self._call(
            intents.confirm,
            setup.id,
            params={"payment_method": payment_method, "expand": ["payment_method"]},
            options={"idempotency_key": f"{idempotency_key}-confirm"},
        )
        if setup.status != "succeeded":
            raise AuthenticationRequired(
                "The card needs authentication before it can be saved.",
                "authentication_required",
                None,
                None,
            )
        method = setup.payment_method  # expanded above: the card's details come with it
        if method is None or isinstance(method, str):
            raise StripeRejected("Stripe did not return the saved card.", None)
        return SetupResult(
            id=setup.id,
            status=setup.status,
            payment_method_id=method.id,
            brand=getattr(method.card, "brand", None),
            last4=getattr(method.card, "last4", None),
            customer_id=_id_of(getattr(method, "customer", None)),
        )

    def retrieve_payment_method(self, payment_method_id: str) -> PaymentMethodResult:
        """A PaymentMethod and the customer it is attached to (an unknown id is rejected)."""
        method = self._call(self._client.v1.payment_methods.retrieve, payment_method_id)
        return PaymentMethodResult(
            id=method.id, customer_id=_id_of(getattr(method, "customer", None))
        )

    def attach_payment_method(self, payment_method_id: str, customer_id: str) -> None:
        """Attach a card to a customer. Stripe does it when a SetupIntent with a customer
        succeeds; localstripe does not, so the service does it when the card came back loose."""
        self._call(
            self._client.v1.payment_methods.attach,
            payment_method_id,
            params={"customer": customer_id},
        )

    def detach_payment_method(self, payment_method_id: str) -> None:
        """Detach a saved card from its customer; a card not attached or gone is fine too."""
        # Real Stripe refuses to detach a card that is not attached: nothing left to undo.
        with suppress(StripeRejected):
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
        """Create and confirm a PaymentIntent of ``amount`` minor units, the card set at creation.

        A decline raises :class:`PaymentDeclined` (:class:`AuthenticationRequired` when the
        customer must authenticate), whether Stripe answers with an error or with an intent
        left in ``requires_payment_method``. Otherwise returns the intent (``succeeded``,
        ``processing``, or ``requires_action`` for an on-session charge).
        """
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "customer": customer_id,
            "payment_method": payment_method,
            "payment_method_types": _CARD_ONLY,
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
        result = _intent(intent)
        _raise_if_declined(result, off_session)
        return result

    def retrieve_payment_intent(self, intent_id: str) -> IntentResult:
        """The PaymentIntent as Stripe has it now (a decline is a status here, not an error)."""
        return _intent(self._call(self._client.v1.payment_intents.retrieve, intent_id))

    def cancel_payment_intent(self, intent_id: str, *, idempotency_key: str) -> IntentResult:
        """Cancel an intent nobody will finish (e.g. 3-D Secure abandoned). Stripe refuses to
        cancel one that has succeeded or is processing (:class:`StripeRejected`): retrieve it.

        No ``cancellation_reason``: localstripe refuses every parameter of this call."""
        return _intent(
            self._call(
                self._client.v1.payment_intents.cancel,
                intent_id,
                options={"idempotency_key": idempotency_key},
            )
        )

    def find_payment_intent_by_metadata(self, key: str, value: str) -> IntentResult | None:
        """The PaymentIntent whose metadata ``key`` is ``value``; None if Stripe has none.

        Heals a crash after Stripe created an intent but before we stored its id, so a None
        must mean "never created": the caller then fails the payment. Hence no search API: real
        Stripe's ``payment_intents.search`` is eventually consistent (a fresh intent may be
        missing for a while) and localstripe has no search route (404), nor list filters on
        ``customer`` or ``created`` (400). This pages through ``list`` and filters the metadata
        here. Real Stripe lists newest first, so the bound (2,000 intents) covers recent
        payments; localstripe lists oldest first. Reaching the bound raises
        :class:`SearchIncomplete` (a :class:`GatewayUnavailable`) rather than a false None.
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
        raise SearchIncomplete(f"no intent with {key}={value} in the {_SEARCH_MAX_PAGES} pages")

    def create_refund(
        self,
        *,
        payment_intent_id: str,
        amount: int,
        reason: str | None = None,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> RefundResult:
        """Refund ``amount`` minor units of a succeeded PaymentIntent (part or all of it).

        ``reason`` is Stripe's enum (:data:`REFUND_REASONS`; ``fraudulent`` also feeds Radar),
        or None. localstripe refuses the field altogether (400 "Unexpected reason"), so our
        free-text reason travels in ``metadata``. localstripe does not check the amount against
        what was paid either: the caller does.
        """
        if reason is not None and reason not in REFUND_REASONS:
            raise ValueError(f"refund reason must be one of {sorted(REFUND_REASONS)}")
        params: dict[str, Any] = {
            "payment_intent": payment_intent_id,
            "amount": amount,
            "metadata": metadata,
        }
        if reason is not None:
            params["reason"] = reason
        refund = self._call(
            self._client.v1.refunds.create,
            params=params,
            options={"idempotency_key": idempotency_key},
        )
        return _refund(refund)

    def find_refund(self, payment_intent_id: str, refund_id: str) -> RefundResult | None:
        """The refund of an intent whose ``refund_id`` metadata is ours (a crash before we
        stored Stripe's id), if Stripe has one. An intent has few refunds: one page holds them."""
        page = self._call(
            self._client.v1.refunds.list,
            params={"payment_intent": payment_intent_id, "limit": _SEARCH_PAGE},
        )
        for refund in page.data:
            if _metadata(refund).get("refund_id") == refund_id:
                return _refund(refund)
        return None

    def retrieve_refund(self, refund_id: str) -> RefundResult:
        """The refund as Stripe has it now."""
        return _refund(self._call(self._client.v1.refunds.retrieve, refund_id))

    def refunds_of_charge(self, charge_id: str) -> list[RefundResult]:
        """Every refund of a charge (``charge.refunded`` names the charge, not the refund)."""
        page = self._call(
            self._client.v1.refunds.list, params={"charge": charge_id, "limit": _SEARCH_PAGE}
        )
        return [_refund(refund) for refund in page.data]

    def intent_of_charge(self, charge_id: str) -> str | None:
        """The PaymentIntent a charge belongs to, if any."""
        charge = self._call(self._client.v1.charges.retrieve, charge_id)
        return _id_of(getattr(charge, "payment_intent", None))

    def construct_event(
        self, payload: bytes, sig_header: str, tolerance: int = 300
    ) -> WebhookEvent:
        """Verify the Stripe-Signature over the raw body (HMAC-SHA256 with the webhook secret,
        timestamp at most ``tolerance`` seconds old) and parse the event."""
        if not self._webhook_secret:
            raise InvalidWebhook("no webhook secret is configured")
        try:
            event = stripe.Webhook.construct_event(
                payload, sig_header, self._webhook_secret, tolerance=tolerance
            )
            return _event(event)
        except stripe.SignatureVerificationError as error:
            raise InvalidWebhook(f"signature: {error}") from error
        # Not UTF-8, not JSON, or JSON that is not an event (a list, no id...).
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise InvalidWebhook(f"payload: {error!r}") from error

    def _declined(self, error: stripe.CardError) -> PaymentDeclined:
        """A CardError as ours; Stripe's ``authentication_required`` gets its own class."""
        body = error.json_body if isinstance(error.json_body, dict) else {}
        details = body.get("error")
        if not isinstance(details, dict):
            details = {}
        intent = details.get("payment_intent")
        # Stripe puts the intent in the error; localstripe only its charge.
        intent_id = intent.get("id") if isinstance(intent, dict) else None
        intent_id = intent_id or self._intent_of_charge(details.get("charge"))
        cls = AuthenticationRequired if error.code == "authentication_required" else PaymentDeclined
        message = error.user_message or details.get("message") or "Your card was declined."
        return cls(message, error.code, details.get("decline_code"), intent_id)

    def _intent_of_charge(self, charge_id: object) -> str | None:
        if not isinstance(charge_id, str):
            return None
        with suppress(StripeRejected, GatewayUnavailable):
            intent = self._call(self._client.v1.charges.retrieve, charge_id).payment_intent
            return intent if isinstance(intent, str) or intent is None else intent.id
        return None


def _raise_if_declined(intent: IntentResult, off_session: bool) -> None:
    """The decline Stripe may report in the intent itself, rather than as an error."""
    if intent.status == "requires_payment_method" and intent.last_error_code:
        code = intent.last_error_code
        cls = AuthenticationRequired if code == "authentication_required" else PaymentDeclined
        message = intent.last_error_message or "Your card was declined."
        raise cls(message, code, intent.decline_code, intent.id)
    if off_session and intent.status == "requires_action":
        # Stripe answers an off-session charge needing 3-D Secure with an error;
        # localstripe with an intent waiting for a customer who is not there.
        raise AuthenticationRequired(
            "This payment needs the customer to authenticate.",
            "authentication_required",
            None,
            intent.id,
        )


def _intent(intent: Any) -> IntentResult:
    error = getattr(intent, "last_payment_error", None)
    received = getattr(intent, "amount_received", None)
    if received is None:  # localstripe leaves it out
        received = intent.amount if intent.status == "succeeded" else 0
    return IntentResult(
        id=intent.id,
        status=intent.status,
        amount=intent.amount,
        amount_received=received,
        currency=intent.currency,
        last_error_code=getattr(error, "code", None) if error else None,
        last_error_message=getattr(error, "message", None) if error else None,
        decline_code=getattr(error, "decline_code", None) if error else None,
        metadata=_metadata(intent),
        client_secret=getattr(intent, "client_secret", None),
    )


def _refund(refund: Any) -> RefundResult:
    return RefundResult(
        id=refund.id,
        status=refund.status,
        amount=refund.amount,
        payment_intent_id=_id_of(getattr(refund, "payment_intent", None)),
        charge_id=_id_of(getattr(refund, "charge", None)),
        metadata=_metadata(refund),
    )


def _id_of(value: Any) -> str | None:
    """The id of an object Stripe sent as an id or expanded."""
    if value is None or isinstance(value, str):
        return value
    return str(getattr(value, "id", None) or "") or None


def _event(event: Any) -> WebhookEvent:
    data = getattr(event, "data", None)
    obj = getattr(data, "object", None) if data else None
    return WebhookEvent(
        id=str(event.id),
        type=str(event.type),
        object_id=getattr(obj, "id", None),
        object_type=getattr(obj, "object", None),
        created=int(event.created),
    )


def _metadata(obj: Any) -> dict[str, str]:
    metadata = getattr(obj, "metadata", None)
    return {str(k): str(v) for k, v in metadata.to_dict().items()} if metadata else {}
