"""Refunds, full or partial: never more than was paid, one at a time per payment."""

from sqlalchemy import select

from core import db, outbox
from core.audit import service as audit
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import Conflict, InvalidInput, NotFound
from core.i18n import Money, _l
from payments.gateway import GatewayUnavailable, RefundResult, StripeRejected
from payments.models import Payment, Refund
from payments.service.base import gateway, log
from payments.service.charges import append_ledger, outcome_of, refunds_of
from payments.signals import REFUND_SUCCEEDED, announce


def refund(
    payment_id: str, amount: int | None, reason: str, actor: Principal | None = None
) -> Refund:
    """Give back ``amount`` (all that is left when None) of a succeeded payment.

    Never more than was paid; refused while another refund of the payment is in progress.
    """
    payment = _lock_payment(payment_id)
    if payment.status != "succeeded":
        raise Conflict(_l("Only a succeeded payment can be refunded."))
    refunds = refunds_of(payment.id)
    if any(r.status == "pending" for r in refunds):
        raise Conflict(_l("A refund of this payment is still in progress."))
    refundable = payment.amount - payment.amount_refunded
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable:
        left = Money(refundable, payment.currency)
        raise InvalidInput(_l("Refundable amount is %(amount)s.", amount=left), field="amount")
    record = Refund(payment_id=payment.id, amount=amount, reason=reason)
    db.session.add(record)
    db.session.flush()
    audit.record(
        actor,
        "payment.refund_requested",
        "payment",
        payment.id,
        after={"refund_id": record.id, "amount": amount, "reason": reason},
    )
    db.session.commit()
    return _submit_refund(payment, record)


def _lock_payment(payment_id: str) -> Payment:
    """Load the payment for update (PostgreSQL row lock; SQLite's BEGIN IMMEDIATE serialises)."""
    db.session.commit()  # start a fresh transaction that takes the lock
    payment = db.session.scalars(
        select(Payment).where(Payment.id == payment_id).with_for_update()
    ).one_or_none()
    if payment is None:
        raise NotFound(_l("No such payment."))
    return payment


def _submit_refund(payment: Payment, record: Refund) -> Refund:
    try:
        result = gateway().create_refund(
            payment_intent_id=payment.stripe_payment_intent_id or "",
            amount=record.amount,
            idempotency_key=f"refund-{record.id}",
            metadata={"refund_id": record.id, "payment_id": payment.id, "reason": record.reason},
        )
    except GatewayUnavailable:
        log.warning("stripe unreachable; refund left pending", extra={"refund": record.id})
        return record
    except StripeRejected as rejected:
        record.status, record.updated_at = "failed", utcnow()
        log.warning("refund refused", extra={"refund": record.id, "reason": rejected.message})
        db.session.commit()
        return record
    record.stripe_refund_id = result.id
    apply_refund(payment, record, result)
    return record


def apply_refund(payment: Payment, record: Refund, result: RefundResult) -> None:
    """Record Stripe's answer for a refund; a success is appended to the ledger once."""
    if record.status != "pending":
        db.session.commit()
        return
    status = result.status if result.status in ("succeeded", "failed", "canceled") else "pending"
    record.status, record.updated_at = status, utcnow()
    if status == "succeeded":
        payment.amount_refunded += record.amount
        payment.updated_at = utcnow()
        append_ledger("refund", record.id, payment, -record.amount)
        announce(REFUND_SUCCEEDED, outcome_of(payment, record))
    db.session.commit()
    outbox.deliver_ready()
