"""Charges: written pending before Stripe is called, moved forward only, announced."""

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
from payments.models import LedgerEntry, Payment, Refund
from payments.reasons import failure_reason
from payments.service.base import RANK, TERMINAL_STATUSES, gateway, log
from payments.service.cards import default_card, ensure_customer
from payments.signals import PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentOutcome, announce


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
    ``payments.signals``.
    """
    currency = check_amount(amount, currency, current_app.config["PAYMENT_MAX_AMOUNT"])
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
        db.session.rollback()
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
        customer_id = ensure_customer(payment.user_id)
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
        payment.stripe_payment_intent_id = declined.intent_id
        fail_payment(payment, declined.decline_code or declined.code, declined.message)
        return payment
    except StripeRejected as rejected:
        log.error(
            "stripe rejected a charge", extra={"payment": payment.id, "why": rejected.message}
        )
        fail_payment(payment, rejected.code or "rejected", rejected.message)
        return payment
    except GatewayUnavailable:
        log.warning("stripe unreachable; payment left pending", extra={"payment": payment.id})
        return payment
    payment.stripe_payment_intent_id = intent.id
    apply_intent(payment, intent)
    return payment


def apply_intent(payment: Payment, intent: IntentResult) -> None:
    """Move the payment forward to what Stripe says (never backward) and announce it."""
    status = _status_of(intent)
    if payment.status in TERMINAL_STATUSES or RANK[status] < RANK[payment.status]:
        db.session.commit()
        return
    if status == "failed":
        fail_payment(
            payment, intent.decline_code or intent.last_error_code, intent.last_error_message
        )
        return
    changed = status != payment.status
    payment.status, payment.updated_at = status, utcnow()
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


def fail_payment(payment: Payment, code: str | None, message: str | None) -> None:
    """Mark the payment failed with its reason, tell the owner module, and the citizen if absent."""
    payment.status, payment.updated_at = "failed", utcnow()
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
