"""The reconciliation sweep: our rows and Stripe agree after it runs."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import Select, select

from core import db
from core.clock import utcnow
from payments.gateway import GatewayUnavailable
from payments.models import Payment, Refund, WebhookEvent
from payments.service.base import OPEN_STATUSES, gateway, log
from payments.service.charges import apply_intent, fail_payment, get_payment
from payments.service.refunds import apply_refund
from payments.service.webhooks import process_event

T = TypeVar("T")


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
                fail_payment(
                    payment, "not_submitted", "The payment never reached the card network."
                )
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
