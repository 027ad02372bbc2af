"""Refunds, full or partial: never more than was paid, one at a time per payment, once per key.

Like a charge, a refund is first committed ``pending`` (under a unique key derived from the
request's ``Idempotency-Key`` when there is one), and only then sent to Stripe with the Stripe
idempotency key ``refund-<row id>`` and our row id in its metadata. A retried request finds the
same row, and the refund Stripe made for it, instead of making another. Stripe's answer, a
webhook or the sweep moves the row forward: ``pending`` → ``succeeded`` → ``failed`` (a refund
can fail at the bank after succeeding; the ledger then gets a reversing entry).
"""

import hashlib

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import db, outbox
from core.audit import service as audit
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import Conflict, InvalidInput
from core.i18n import Money, _l
from payments.gateway import GatewayUnavailable, RefundResult, StripeRejected
from payments.models import Payment, Refund
from payments.service.base import (
    before_stripe,
    gateway,
    lock_payment,
    log,
    reload_refund,
    unit_of_work,
)
from payments.service.charges import append_ledger, outcome_of, refunds_of
from payments.signals import REFUND_FAILED, REFUND_SUCCEEDED, announce

# Where a refund is on its way; it only moves up (Stripe: pending -> succeeded -> failed).
REFUND_RANK = {"pending": 0, "succeeded": 1, "failed": 2, "canceled": 2}
REFUNDED_AT_STRIPE = "Refunded at Stripe, not through this app."


@unit_of_work
def refund(
    payment_id: str,
    amount: int | None,
    reason: str,
    actor: Principal | None = None,
    *,
    idempotency_key: str | None = None,
) -> Refund:
    """Give back ``amount`` (all that is left when None) of a succeeded payment.

    Never more than was paid; refused while another refund of the payment is in progress.
    With an ``idempotency_key`` (the request's ``Idempotency-Key``, or a key from the caller's
    business object), a retry returns the refund made the first time, settled with Stripe if
    it got there, and never refunds twice; the same key with another amount or reason is 422.
    """
    payment = lock_payment(payment_id)
    key = _refund_key(payment.id, actor, idempotency_key) if idempotency_key else None
    existing = _refund_with_key(key) if key else None
    if existing is not None:
        return _same_refund(payment, existing, amount, reason)
    if payment.status != "succeeded":
        raise Conflict(_l("Only a succeeded payment can be refunded."))
    if any(r.status == "pending" for r in refunds_of(payment.id)):
        raise Conflict(_l("A refund of this payment is still in progress."))
    refundable = payment.amount - payment.amount_refunded
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable:
        left = Money(refundable, payment.currency)
        raise InvalidInput(_l("Refundable amount is %(amount)s.", amount=left), field="amount")
    record = Refund(payment_id=payment.id, amount=amount, reason=reason, idempotency_key=key)
    db.session.add(record)
    try:
        db.session.flush()
    except IntegrityError:  # the same key, inserted meanwhile (cannot happen under the lock)
        db.session.rollback()
        return _same_refund(payment, _refund_with_key(key), amount, reason)
    audit.record(
        actor,
        "payment.refund_requested",
        "payment",
        payment.id,
        after={"refund_id": record.id, "amount": amount, "reason": reason},
    )
    db.session.commit()
    return _submit_refund(payment, record)


def _refund_key(payment_id: str, actor: Principal | None, idempotency_key: str) -> str:
    """The refund's business key: the payment, who asked, and their key (keys are per caller)."""
    caller = actor.actor if actor is not None else "service"
    return hashlib.sha256(f"{payment_id}\0{caller}\0{idempotency_key}".encode()).hexdigest()


def _refund_with_key(key: str | None) -> Refund | None:
    return db.session.scalars(select(Refund).where(Refund.idempotency_key == key)).one_or_none()


def _same_refund(
    payment: Payment, existing: Refund | None, amount: int | None, reason: str
) -> Refund:
    """The refund already asked for with this key, settled with Stripe if it is still pending
    (the first request may have died after Stripe answered). Never a second Stripe refund."""
    assert existing is not None
    if (amount is not None and amount != existing.amount) or reason != existing.reason:
        raise InvalidInput(
            _l("This Idempotency-Key was already used with a different request."),
            field="Idempotency-Key",
            location="headers",
        )
    if existing.status != "pending":
        return existing
    intent_id = payment.stripe_payment_intent_id or ""
    before_stripe()
    try:
        if existing.stripe_refund_id:
            found: RefundResult | None = gateway().retrieve_refund(existing.stripe_refund_id)
        else:
            found = gateway().find_refund(intent_id, existing.id)
    except (GatewayUnavailable, StripeRejected):
        return existing  # still pending: the sweep settles it
    if found is not None:
        apply_stripe_refund(payment, existing, found)
    return existing


def _submit_refund(payment: Payment, record: Refund) -> Refund:
    before_stripe()
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
        log.warning("refund refused", extra={"refund": record.id, "reason": rejected.message})
        fail_refund(payment, record)
        return record
    apply_refund(payment, record, result)
    return record


@unit_of_work
def apply_refund(payment: Payment, record: Refund, result: RefundResult) -> None:
    """Record what Stripe says of a refund (see :func:`apply_stripe_refund`)."""
    apply_stripe_refund(payment, record, result)


def apply_stripe_refund(payment: Payment, record: Refund, result: RefundResult) -> None:
    """Move the refund to Stripe's status, forward only, and announce the change.

    ``succeeded``: the payment's ``amount_refunded`` grows, the ledger gets -amount, and
    ``refund_succeeded`` is announced. ``failed`` or ``canceled``: ``refund_failed`` is
    announced, and if the refund had succeeded, ``amount_refunded`` shrinks back and the ledger
    gets a reversing +amount (ledger rows are never deleted).
    """
    payment = lock_payment(payment.id)
    record = reload_refund(record.id)
    record.stripe_refund_id = record.stripe_refund_id or result.id
    status = result.status if result.status in REFUND_RANK else "pending"
    if REFUND_RANK[status] <= REFUND_RANK[record.status]:
        if record.status == "pending":
            record.updated_at = utcnow()  # asked just now: the sweep waits before asking again
        db.session.commit()
        return
    before = record.status
    record.status, record.updated_at = status, utcnow()
    payment.updated_at = utcnow()
    if status == "succeeded":
        payment.amount_refunded += record.amount
        append_ledger("refund", record.id, payment, -record.amount)
        announce(REFUND_SUCCEEDED, outcome_of(payment, record))
    else:
        if before == "succeeded":
            payment.amount_refunded -= record.amount
            append_ledger("refund_reversal", record.id, payment, record.amount)
            log.warning("refund failed after succeeding", extra={"refund": record.id})
        announce(REFUND_FAILED, outcome_of(payment, record))
    db.session.commit()
    outbox.deliver_ready()


def fail_refund(payment: Payment, record: Refund) -> None:
    """A pending refund Stripe refused or never received: nothing was given back."""
    payment = lock_payment(payment.id)
    record = reload_refund(record.id)
    if record.status != "pending":
        db.session.commit()
        return
    record.status, record.updated_at = "failed", utcnow()
    announce(REFUND_FAILED, outcome_of(payment, record))
    db.session.commit()
    outbox.deliver_ready()


def apply_refund_from_stripe(result: RefundResult, intent_id: str | None) -> bool:
    """Apply a refund Stripe reports (webhook): ours by its id or metadata, or one made at
    Stripe directly (recorded now). False when it is not a refund of one of our payments."""
    record = _ours(result)
    if record is not None:
        payment = db.session.get(Payment, record.payment_id)
        assert payment is not None
        apply_stripe_refund(payment, record, result)
        return True
    payment = _payment_of_intent(intent_id)
    if payment is None:
        db.session.commit()
        return False
    record = _record_refund_made_at_stripe(payment, result)
    apply_stripe_refund(payment, record, result)
    return True


def _ours(result: RefundResult) -> Refund | None:
    record = db.session.scalars(
        select(Refund).where(Refund.stripe_refund_id == result.id)
    ).one_or_none()
    refund_id = result.metadata.get("refund_id")
    if record is None and refund_id:
        record = db.session.get(Refund, refund_id)
    return record


def _payment_of_intent(intent_id: str | None) -> Payment | None:
    if not intent_id:
        return None
    return db.session.scalars(
        select(Payment).where(Payment.stripe_payment_intent_id == intent_id)
    ).one_or_none()


def _record_refund_made_at_stripe(payment: Payment, result: RefundResult) -> Refund:
    """A refund made in Stripe's dashboard: recorded pending, then applied like ours."""
    lock_payment(payment.id)
    record = Refund(
        payment_id=payment.id,
        amount=result.amount,
        reason=REFUNDED_AT_STRIPE,
        stripe_refund_id=result.id,
    )
    db.session.add(record)
    try:
        db.session.commit()
    except IntegrityError:  # another delivery of the same news recorded it first
        db.session.rollback()
        found = _ours(result)
        assert found is not None
        return found
    log.info("refund made at stripe recorded", extra={"refund": record.id})
    return record
