"""The payment rail's rules: customers, saved cards, charges, refunds, webhooks, reconciliation.

Money never moves twice: a charge first commits a ``pending`` row whose unique idempotency key
comes from the business object (``bill-<id>-attempt-<n>``), and only the request that wrote the
row calls Stripe, with a Stripe idempotency key derived from the row. Stripe's answer, a webhook
or the reconciliation sweep then moves the row forward, never back.
"""

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from core import db
from core.audit import service as audit
from core.auth.principal import Principal
from core.auth.service import get_user
from core.clock import utcnow
from core.errors import BadRequest, Conflict, InvalidInput, NotFound
from core.inbox import service as inbox
from core.money import check_amount, format_amount
from payments.gateway import (
    GatewayUnavailable,
    IntentResult,
    InvalidWebhook,
    PaymentDeclined,
    RefundResult,
    StripeGateway,
    StripeRejected,
)
from payments.models import LedgerEntry, Payment, Refund, SavedCard, StripeCustomer, WebhookEvent
from payments.signals import PaymentOutcome, payment_failed, payment_succeeded, refund_succeeded

log = logging.getLogger("civic.payments")
T = TypeVar("T")

OPEN_STATUSES = ("pending", "requires_action", "processing")
TERMINAL_STATUSES = ("succeeded", "failed", "canceled")
# How far along a payment is; a row only ever moves to a higher rank (events arrive out of order).
_RANK = {"pending": 0, "requires_action": 1, "processing": 2}
_RANK.update(dict.fromkeys(TERMINAL_STATUSES, 3))


def gateway() -> StripeGateway:
    """The app's Stripe adapter, built from configuration on first use."""
    extensions = current_app.extensions
    if "stripe_gateway" not in extensions:
        config = current_app.config
        extensions["stripe_gateway"] = StripeGateway(
            secret_key=config["STRIPE_SECRET_KEY"],
            api_base=config["STRIPE_API_BASE"] or None,
            api_version=config["STRIPE_API_VERSION"],
            webhook_secret=config["STRIPE_WEBHOOK_SECRET"] or None,
        )
    return extensions["stripe_gateway"]


# --- customers and saved cards ---------------------------------------------------------------


def ensure_customer(user_id: str) -> str:
    """The citizen's Stripe customer id, creating the customer the first time."""
    existing = db.session.get(StripeCustomer, user_id)
    if existing is not None:
        return existing.stripe_customer_id
    user = get_user(user_id)
    customer_id = gateway().create_customer(
        email=user.email, name=user.name, citizen_id=user.id, idempotency_key=f"customer-{user.id}"
    )
    db.session.add(StripeCustomer(user_id=user.id, stripe_customer_id=customer_id))
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent request created one first: use theirs
        db.session.rollback()
        return db.session.get(StripeCustomer, user_id).stripe_customer_id  # type: ignore[union-attr]
    return customer_id


def save_card(user_id: str, payment_method: str, consent_version: str) -> SavedCard:
    """Save a card for later off-session charges (a SetupIntent), recording the consent."""
    current = current_app.config["OFF_SESSION_CONSENT_VERSION"]
    if consent_version != current:
        raise InvalidInput(
            f"Consent must be given to the current text (version {current}).",
            field="consent_text_version",
        )
    customer_id = ensure_customer(user_id)
    consented_at = utcnow()
    try:
        setup = gateway().create_setup_intent(
            customer_id=customer_id,
            payment_method=payment_method,
            idempotency_key=f"setup-{user_id}-{payment_method}-{consented_at.timestamp()}",
        )
    except StripeRejected as rejected:
        raise InvalidInput(rejected.message, field="payment_method") from None
    card = SavedCard(
        user_id=user_id,
        stripe_payment_method_id=setup.payment_method_id,
        setup_intent_id=setup.id,
        brand=setup.brand,
        last4=setup.last4,
        consent_version=consent_version,
        consented_at=consented_at,
    )
    db.session.add(card)
    db.session.commit()
    return card


def list_cards(user_id: str) -> list[SavedCard]:
    query = select(SavedCard).where(SavedCard.user_id == user_id, SavedCard.removed_at.is_(None))
    return list(db.session.scalars(query.order_by(SavedCard.created_at.desc())))


def remove_card(user_id: str, card_id: str) -> None:
    """Detach the card at Stripe and forget it; another citizen's card is 404."""
    card = db.session.get(SavedCard, card_id)
    if card is None or card.user_id != user_id or card.removed_at is not None:
        raise NotFound("No such card.")
    gateway().detach_payment_method(card.stripe_payment_method_id)
    card.removed_at = utcnow()
    db.session.commit()


def _default_card(user_id: str) -> str:
    cards = list_cards(user_id)
    if not cards:
        raise InvalidInput("No saved card; save one first.", field="payment_method")
    return cards[0].stripe_payment_method_id


# --- charges ---------------------------------------------------------------------------------


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
    reconciliation sweep settles it). The owner module hears the outcome through signals.
    """
    currency = check_amount(amount, currency, current_app.config["PAYMENT_MAX_AMOUNT"])
    method = payment_method or _default_card(citizen_id)
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
            "This idempotency key was used for a different charge.", field="idempotency_key"
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
        _fail(payment, declined.decline_code or declined.code, declined.message)
        return payment
    except StripeRejected as rejected:
        log.error(
            "stripe rejected a charge", extra={"payment": payment.id, "why": rejected.message}
        )
        _fail(payment, rejected.code or "rejected", rejected.message)
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
    if payment.status in TERMINAL_STATUSES or _RANK[status] < _RANK[payment.status]:
        db.session.commit()
        return
    if status == "failed":
        _fail(payment, intent.decline_code or intent.last_error_code, intent.last_error_message)
        return
    changed = status != payment.status
    payment.status, payment.updated_at = status, utcnow()
    if status == "succeeded":
        _append_ledger("charge", payment.id, payment, payment.amount)
    db.session.commit()
    if changed and status == "succeeded":
        payment_succeeded.send("payments", outcome=_outcome(payment))
    elif changed and status == "canceled":  # not paid: the owner module must know
        payment_failed.send("payments", outcome=_outcome(payment))


def _status_of(intent: IntentResult) -> str:
    if intent.status in ("succeeded", "processing", "requires_action", "canceled"):
        return intent.status
    if intent.status == "requires_capture":
        return "processing"
    if intent.status == "requires_payment_method" and intent.last_error_code:
        return "failed"
    return "pending"


def _fail(payment: Payment, code: str | None, message: str | None) -> None:
    """Mark the payment failed with its reason, tell the owner module, and the citizen if absent."""
    payment.status, payment.updated_at = "failed", utcnow()
    payment.failure_code = code or "payment_failed"
    payment.failure_message = message or "The payment was not accepted."
    if payment.off_session:
        inbox.notify(
            payment.user_id,
            "payment_failed",
            "Please complete your payment in the app",
            f"We could not charge {format_amount(payment.amount, payment.currency)} to your "
            f"saved card ({payment.failure_message}). Please pay in the app.",
            {"payment_id": payment.id, "purpose": payment.purpose, "reference": payment.reference},
        )
    db.session.commit()
    payment_failed.send("payments", outcome=_outcome(payment))


def _outcome(payment: Payment, refund: Refund | None = None) -> PaymentOutcome:
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


def _append_ledger(kind: str, source_id: str, payment: Payment, amount: int) -> None:
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
        raise NotFound("No such payment.")
    return payment


def payment_detail(principal: Principal, payment_id: str) -> dict[str, object]:
    """A payment and its refunds; a citizen sees only their own (another's is 404)."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or (principal.role == "citizen" and payment.user_id != principal.id):
        raise NotFound("No such payment.")
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


# --- refunds ---------------------------------------------------------------------------------


def refund(
    payment_id: str, amount: int | None, reason: str, actor: Principal | None = None
) -> Refund:
    """Give back ``amount`` (all that is left when None) of a succeeded payment.

    Never more than was paid; refused while another refund of the payment is in progress.
    """
    payment = _lock_payment(payment_id)
    if payment.status != "succeeded":
        raise Conflict("Only a succeeded payment can be refunded.")
    refunds = refunds_of(payment.id)
    if any(r.status == "pending" for r in refunds):
        raise Conflict("A refund of this payment is still in progress.")
    refundable = payment.amount - payment.amount_refunded
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable:
        raise InvalidInput(f"Refundable amount is {refundable}.", field="amount")
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
        raise NotFound("No such payment.")
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
        _append_ledger("refund", record.id, payment, -record.amount)
    db.session.commit()
    if status == "succeeded":
        refund_succeeded.send("payments", outcome=_outcome(payment, record))


# --- webhooks --------------------------------------------------------------------------------


def receive_webhook(payload: bytes, signature: str) -> bool:
    """Verify and store a Stripe event, then process it; False for an event seen before."""
    try:
        event = gateway().construct_event(payload, signature)
    except InvalidWebhook as error:
        log.warning("stripe webhook rejected: bad signature or payload", extra={"why": str(error)})
        raise BadRequest("Invalid Stripe signature or payload.") from None
    record = WebhookEvent(id=event.id, type=event.type, object_id=event.object_id)
    db.session.add(record)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        log.info("stripe webhook already received", extra={"event": event.id})
        return False
    process_event(record)
    return True


def process_event(record: WebhookEvent) -> None:
    """Apply an event by re-fetching its object (events may be stale or out of order)."""
    try:
        if record.type.startswith("payment_intent.") and record.object_id:
            _refresh_by_intent(record.object_id)
    except GatewayUnavailable:
        db.session.rollback()
        return  # processed_at stays empty: the sweep retries
    record.processed_at = utcnow()
    db.session.commit()


def _refresh_by_intent(intent_id: str) -> None:
    payment = db.session.scalars(
        select(Payment).where(Payment.stripe_payment_intent_id == intent_id)
    ).one_or_none()
    if payment is not None:
        apply_intent(payment, gateway().retrieve_payment_intent(intent_id))


# --- reconciliation --------------------------------------------------------------------------


def reconcile(batch: int = 100) -> int:
    """Settle payments and refunds left open too long, and events not yet processed.

    Heals a crash between Stripe and our commit, and a lost webhook. Returns rows touched.
    """
    cutoff = utcnow() - timedelta(seconds=current_app.config["PAYMENT_RECONCILE_AFTER_SECONDS"])
    open_payments = select(Payment).where(
        Payment.status.in_(OPEN_STATUSES), Payment.updated_at < cutoff
    )
    pending_refunds = select(Refund).where(Refund.status == "pending", Refund.updated_at < cutoff)
    unprocessed = select(WebhookEvent).where(
        WebhookEvent.processed_at.is_(None), WebhookEvent.received_at < cutoff
    )
    return (
        _sweep(open_payments, Payment.id, _reconcile_payment, batch)
        + _sweep(pending_refunds, Refund.id, _reconcile_refund, batch)
        + _sweep(unprocessed, WebhookEvent.id, _process_again, batch)
    )


def _sweep(query: Select[tuple[T]], key: Any, handle: Callable[[T], int], batch: int) -> int:
    """Handle due rows one transaction each. On PostgreSQL each row is locked while handled
    and a second sweeper skips it (``SKIP LOCKED``); a row that could not be settled now is
    not retried within this run."""
    touched, seen = 0, list[str]()
    for _ in range(batch):
        due = query.where(key.not_in(seen)) if seen else query
        if db.is_postgresql():
            due = due.with_for_update(skip_locked=True)
        row = db.session.scalars(due.limit(1)).first()
        if row is None:
            break
        seen.append(getattr(row, key.key))
        touched += handle(row)
    return touched


def _process_again(event: WebhookEvent) -> int:
    process_event(event)
    return 1


def _reconcile_payment(payment: Payment) -> int:
    try:
        if payment.stripe_payment_intent_id:
            intent = gateway().retrieve_payment_intent(payment.stripe_payment_intent_id)
        else:
            found = gateway().find_payment_intent_by_metadata("payment_id", payment.id)
            if found is None:  # the process died before Stripe was called
                _fail(payment, "not_submitted", "The payment never reached the card network.")
                return 1
            intent = found
            payment.stripe_payment_intent_id = intent.id
    except GatewayUnavailable:
        db.session.rollback()
        return 0
    log.info("reconciled payment", extra={"payment": payment.id, "stripe_status": intent.status})
    apply_intent(payment, intent)
    return 1


def _reconcile_refund(record: Refund) -> int:
    payment = get_payment(record.payment_id)
    try:
        if record.stripe_refund_id:
            result = gateway().retrieve_refund(record.stripe_refund_id)
        else:
            found = gateway().find_refund(payment.stripe_payment_intent_id or "", record.id)
            if found is None:  # never reached Stripe: nothing was given back
                record.status, record.updated_at = "failed", utcnow()
                db.session.commit()
                return 1
            result = found
            record.stripe_refund_id = result.id
    except GatewayUnavailable:
        db.session.rollback()
        return 0
    apply_refund(payment, record, result)
    return 1
