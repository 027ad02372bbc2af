"""The sweeps: our rows and Stripe agree after ``reconcile`` runs, and a payment waiting for
3-D Secure that nobody finishes is canceled after ``PAYMENT_REQUIRES_ACTION_HOURS``."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import Select, select

from core import db
from core.clock import utcnow
from payments.gateway import GatewayUnavailable, IntentResult, StripeRejected
from payments.models import Payment, Refund, WebhookEvent
from payments.service.base import OPEN_STATUSES, before_stripe, gateway, log, unit_of_work
from payments.service.charges import cancel_payment, fail_payment, get_payment, settle_intent
from payments.service.refunds import apply_stripe_refund, fail_refund
from payments.service.webhooks import settle_event

T = TypeVar("T")


@unit_of_work
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


@unit_of_work
def expire_requires_action(batch: int = 100) -> int:
    """Cancel, at Stripe and here, payments left in ``requires_action`` (3-D Secure never
    finished) for ``PAYMENT_REQUIRES_ACTION_HOURS``; the owner module hears ``payment_failed``.
    Returns the payments settled."""
    hours = current_app.config["PAYMENT_REQUIRES_ACTION_HOURS"]
    due = select(Payment).where(
        Payment.status == "requires_action", Payment.created_at < utcnow() - timedelta(hours=hours)
    )
    return _sweep(due, Payment.id, _expire, batch)


def _sweep(query: Select[tuple[T]], key: Any, handle: Callable[[T], int], batch: int) -> int:
    """Handle due rows one at a time. On PostgreSQL a row another sweeper holds right now is
    skipped (``SKIP LOCKED``); the lock is released before Stripe is called, and the handler
    re-reads and locks the row to apply what Stripe said, so two sweepers never apply twice.
    A row that could not be settled now is not retried within this run."""
    touched, seen = 0, list[str]()
    for _ in range(batch):
        due = query.where(key.not_in(seen)) if seen else query
        if db.is_postgresql():
            due = due.with_for_update(skip_locked=True)
        row = db.session.scalars(due.limit(1)).first()
        if row is None:
            db.session.commit()
            break
        seen.append(getattr(row, key.key))
        touched += handle(row)
    return touched


def _process_again(event: WebhookEvent) -> int:
    before_stripe()
    settle_event(event)
    return 1


def _reconcile_payment(payment: Payment) -> int:
    intent_id = payment.stripe_payment_intent_id
    before_stripe()
    try:
        if intent_id:
            intent = gateway().retrieve_payment_intent(intent_id)
        else:
            found = gateway().find_payment_intent_by_metadata("payment_id", payment.id)
            if found is None:  # the process died before Stripe was called
                fail_payment(
                    payment, "not_submitted", "The payment never reached the card network."
                )
                return 1
            intent = found
    except GatewayUnavailable:
        return 0
    log.info("reconciled payment", extra={"payment": payment.id, "stripe_status": intent.status})
    settle_intent(payment, intent)
    return 1


def _reconcile_refund(record: Refund) -> int:
    payment = get_payment(record.payment_id)
    intent_id, stripe_refund_id = payment.stripe_payment_intent_id or "", record.stripe_refund_id
    before_stripe()
    try:
        if stripe_refund_id:
            result = gateway().retrieve_refund(stripe_refund_id)
        else:
            found = gateway().find_refund(intent_id, record.id)
            if found is None:  # never reached Stripe: nothing was given back
                fail_refund(payment, record)
                return 1
            result = found
    except GatewayUnavailable:
        return 0
    apply_stripe_refund(payment, record, result)
    return 1


def _expire(payment: Payment) -> int:
    intent_id = payment.stripe_payment_intent_id
    before_stripe()
    if not intent_id:  # cannot happen (only an intent asks for action); nothing to cancel
        cancel_payment(payment, "expired", "The payment was not completed in time.")
        return 1
    try:
        intent = _cancel_at_stripe(payment.id, intent_id)
    except GatewayUnavailable:
        return 0
    if intent.status == "canceled":
        log.info("requires_action payment expired", extra={"payment": payment.id})
        cancel_payment(payment, "expired", "The payment was not completed in time.")
    else:  # it moved on at Stripe meanwhile (the citizen finished just now): take that
        settle_intent(payment, intent)
    return 1


def _cancel_at_stripe(payment_id: str, intent_id: str) -> IntentResult:
    try:
        return gateway().cancel_payment_intent(
            intent_id, idempotency_key=f"payment-{payment_id}-expire"
        )
    except StripeRejected:  # succeeded or processing meanwhile: Stripe will not cancel it
        return gateway().retrieve_payment_intent(intent_id)
