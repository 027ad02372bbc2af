"""Charges: written pending before Stripe is called, moved forward only, announced."""

from collections.abc import Mapping
from typing import Any

from flask import current_app
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from core import db, outbox
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import InvalidInput, NotFound
from core.i18n import Money, _l
from core.inbox import service as inbox
from core.money import check_amount
from payments.gateway import GatewayUnavailable, IntentResult, PaymentDeclined, StripeRejected
from payments.models import AMOUNT_CEILINGS, LedgerEntry, Payment, Refund
from payments.reasons import failure_reason
from payments.service.base import (
    OPEN_STATUSES,
    RANK,
    TERMINAL_STATUSES,
    before_stripe,
    gateway,
    lock_payment,
    log,
    unit_of_work,
)
from payments.service.cards import customer_id_of, default_card, refuse_anothers_card
from payments.signals import PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentOutcome, announce


def max_amount(currency: str) -> int:
    """The largest payment accepted in ``currency`` (``PAYMENT_MAX_AMOUNT_<CURRENCY>``, else
    ``PAYMENT_MAX_AMOUNT``), in minor units."""
    config = current_app.config
    return int(config["PAYMENT_MAX_AMOUNTS"].get(currency.upper(), config["PAYMENT_MAX_AMOUNT"]))


def check_limits(config: Mapping[str, Any]) -> None:
    """Refuse to start with a payment maximum the database would refuse (its per-currency
    CHECK), or one for a currency we do not take."""
    limits = config["PAYMENT_MAX_AMOUNTS"]
    unknown = sorted(set(limits) - set(AMOUNT_CEILINGS))
    if unknown:
        raise RuntimeError(
            f"PAYMENT_MAX_AMOUNT_{unknown[0]}: {unknown[0]} is not a currency we take"
        )
    for currency, ceiling in AMOUNT_CEILINGS.items():
        limit = int(limits.get(currency, config["PAYMENT_MAX_AMOUNT"]))
        if not 0 < limit <= ceiling:
            name = f"PAYMENT_MAX_AMOUNT_{currency}" if currency in limits else "PAYMENT_MAX_AMOUNT"
            raise RuntimeError(
                f"{name} must be between 1 and {ceiling} for {currency} (the most one payment "
                f"may be in the database and at Stripe), got {limit}"
            )


@unit_of_work
def charge(
    citizen_id: str,
    amount: int,
    currency: str,
    purpose: str,
    reference: str,
    *,
    payment_method: str | None = None,
    off_session: bool = False,
    idempotency_key: str,
) -> Payment:
    """Take ``amount`` (minor units) from the citizen, at most once per ``idempotency_key``.

    Returns the payment in whatever state it reached: ``succeeded``, ``failed`` (with the
    reason), ``requires_action``, or ``pending`` when Stripe could not be reached (the
    reconciliation sweep settles it). The owner module hears the outcome through
    ``payments.signals``. The caller must have committed its own work first (a RuntimeError
    otherwise); payments commits only its own rows and holds no transaction while Stripe
    answers.
    """
    currency = check_amount(amount, currency, max_amount(currency))
    if payment_method:
        refuse_anothers_card(citizen_id, payment_method)
    method = payment_method or default_card(citizen_id)
    payment = Payment(
        user_id=citizen_id,
        amount=amount,
        currency=currency,
        purpose=purpose,
        reference=reference,
        idempotency_key=idempotency_key,
        off_session=off_session,
        stripe_payment_method_id=method,
    )
    db.session.add(payment)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # payments' own insert only: the caller's session was clean
        return _same_charge(idempotency_key, citizen_id, amount, currency)
    return _submit(payment)


def _same_charge(idempotency_key: str, citizen_id: str, amount: int, currency: str) -> Payment:
    """The payment already made with this key; 422 if the key was used for another charge."""
    existing = db.session.scalars(
        select(Payment).where(Payment.idempotency_key == idempotency_key)
    ).one()
    if (existing.user_id, existing.amount, existing.currency) != (citizen_id, amount, currency):
        raise InvalidInput(
            _l("This idempotency key was used for a different charge."), field="idempotency_key"
        )
    return existing


def _submit(payment: Payment) -> Payment:
    """Create and confirm the PaymentIntent for a committed pending payment."""
    try:
        customer_id = customer_id_of(payment.user_id)
        before_stripe()
        intent = gateway().create_payment_intent(
            amount=payment.amount,
            currency=payment.currency,
            customer_id=customer_id,
            payment_method=payment.stripe_payment_method_id or "",
            off_session=payment.off_session,
            idempotency_key=f"payment-{payment.id}",
            metadata={
                "payment_id": payment.id,
                "purpose": payment.purpose,
                "reference": payment.reference,
            },
        )
    except PaymentDeclined as declined:
        fail_payment(
            payment, declined.decline_code or declined.code, declined.message, declined.intent_id
        )
        return payment
    except StripeRejected as rejected:
        log.error(
            "stripe rejected a charge", extra={"payment": payment.id, "why": rejected.message}
        )
        fail_payment(payment, rejected.code or "rejected", rejected.message)
        return payment
    except GatewayUnavailable:
        db.session.rollback()
        log.warning("stripe unreachable; payment left pending", extra={"payment": payment.id})
        return payment
    settle_intent(payment, intent)
    return payment


@unit_of_work
def apply_intent(payment: Payment, intent: IntentResult) -> None:
    """Move the payment forward to what Stripe says (never backward) and announce it."""
    settle_intent(payment, intent)


def settle_intent(payment: Payment, intent: IntentResult) -> None:
    """:func:`apply_intent` inside payments' own unit of work (no transaction of the caller's)."""
    status = _status_of(intent)
    if status == "failed":
        fail_payment(
            payment,
            intent.decline_code or intent.last_error_code,
            intent.last_error_message,
            intent.id,
        )
        return
    payment = lock_payment(payment.id)
    if payment.status in TERMINAL_STATUSES or RANK[status] < RANK[payment.status]:
        db.session.commit()
        return
    changed = status != payment.status
    payment.status, payment.updated_at = status, utcnow()
    payment.stripe_payment_intent_id = payment.stripe_payment_intent_id or intent.id
    if status == "succeeded":
        append_ledger("charge", payment.id, payment, payment.amount)
    if changed and status == "succeeded":
        announce(PAYMENT_SUCCEEDED, outcome_of(payment))
    elif changed and status == "canceled":  # not paid: the owner module must know
        announce(PAYMENT_FAILED, outcome_of(payment))
    db.session.commit()
    outbox.deliver_ready()


def _status_of(intent: IntentResult) -> str:
    if intent.status in ("succeeded", "processing", "requires_action", "canceled"):
        return intent.status
    if intent.status == "requires_capture":
        return "processing"
    if intent.status == "requires_payment_method" and intent.last_error_code:
        return "failed"
    return "pending"


def fail_payment(
    payment: Payment, code: str | None, message: str | None, intent_id: str | None = None
) -> None:
    """Mark an open payment failed with its reason, tell the owner module, and the citizen if
    absent (an off-session charge). A payment that has already settled is left as it is."""
    payment = lock_payment(payment.id)
    if payment.status not in OPEN_STATUSES:
        db.session.commit()
        return
    payment.status, payment.updated_at = "failed", utcnow()
    payment.stripe_payment_intent_id = payment.stripe_payment_intent_id or intent_id
    payment.failure_code = code or "payment_failed"
    payment.failure_message = message or "The payment was not accepted."
    if payment.off_session:
        inbox.notify(
            payment.user_id,
            "payment_failed",
            _l("Please complete your payment in the app"),
            _l(
                "We could not charge %(amount)s to your saved card. %(reason)s "
                "Please pay in the app."
            ),
            params={
                "amount": Money(payment.amount, payment.currency),
                "reason": failure_reason(payment.failure_code),
            },
            data={
                "payment_id": payment.id,
                "purpose": payment.purpose,
                "reference": payment.reference,
            },
        )
    announce(PAYMENT_FAILED, outcome_of(payment))
    db.session.commit()
    outbox.deliver_ready()


def cancel_payment(payment: Payment, code: str, message: str) -> None:
    """Mark an open payment canceled (Stripe canceled its intent) and tell the owner module."""
    payment = lock_payment(payment.id)
    if payment.status not in OPEN_STATUSES:
        db.session.commit()
        return
    payment.status, payment.updated_at = "canceled", utcnow()
    payment.failure_code, payment.failure_message = code, message
    announce(PAYMENT_FAILED, outcome_of(payment))
    db.session.commit()
    outbox.deliver_ready()


def outcome_of(payment: Payment, refund: Refund | None = None) -> PaymentOutcome:
    return PaymentOutcome(
        payment_id=payment.id,
        user_id=payment.user_id,
        purpose=payment.purpose,
        reference=payment.reference,
        amount=payment.amount,
        currency=payment.currency,
        status=payment.status,
        failure_code=payment.failure_code,
        failure_message=payment.failure_message,
        refund_id=refund.id if refund else None,
        refunded_amount=refund.amount if refund else None,
    )


def append_ledger(kind: str, source_id: str, payment: Payment, amount: int) -> None:
    """Append one entry per charge or refund; the unique (kind, source) makes it once only."""
    exists = db.session.scalar(
        select(LedgerEntry.id).where(LedgerEntry.kind == kind, LedgerEntry.source_id == source_id)
    )
    if exists is None:
        db.session.add(
            LedgerEntry(
                kind=kind,
                source_id=source_id,
                payment_id=payment.id,
                purpose=payment.purpose,
                reference=payment.reference,
                currency=payment.currency,
                amount=amount,
            )
        )


def balance(purpose: str, reference: str) -> dict[str, int]:
    """What has been paid, net of refunds, for a business object, per currency."""
    rows = db.session.execute(
        select(LedgerEntry.currency, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.purpose == purpose, LedgerEntry.reference == reference)
        .group_by(LedgerEntry.currency)
    )
    return {currency: int(total) for currency, total in rows}


def get_payment(payment_id: str) -> Payment:
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(_l("No such payment."))
    return payment


def client_secret(payment_id: str) -> str | None:
    """The client secret of a ``requires_action`` payment's PaymentIntent, for the app to
    finish 3-D Secure with Stripe's SDK; read from Stripe each time, never stored."""
    intent_id = get_payment(payment_id).stripe_payment_intent_id
    db.end_read_transaction()  # no transaction stays open across a call to Stripe
    if intent_id is None:
        return None
    return gateway().retrieve_payment_intent(intent_id).client_secret


def payment_detail(principal: Principal, payment_id: str) -> dict[str, object]:
    """A payment and its refunds; a citizen sees only their own (another's is 404)."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or (principal.role == "citizen" and payment.user_id != principal.id):
        raise NotFound(_l("No such payment."))
    return {**_columns(payment), "refunds": refunds_of(payment.id)}


def _columns(row: Payment) -> dict[str, object]:
    return {column.key: getattr(row, column.key) for column in Payment.__table__.columns}


def history(user_id: str) -> Select[tuple[Payment]]:
    return (
        select(Payment)
        .where(Payment.user_id == user_id)
        .order_by(Payment.created_at.desc(), Payment.id)
    )


def refunds_of(payment_id: str) -> list[Refund]:
    query = select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.created_at)
    return list(db.session.scalars(query))
