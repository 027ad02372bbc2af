"""Stripe's webhook: verified, stored once by event id, applied by re-fetching the object."""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import db
from core.clock import utcnow
from core.errors import BadRequest
from core.i18n import _l
from payments.gateway import GatewayUnavailable, InvalidWebhook, StripeRejected
from payments.models import Payment, WebhookEvent
from payments.service.base import gateway, log
from payments.service.charges import apply_intent


def receive_webhook(payload: bytes, signature: str) -> bool:
    """Verify and store a Stripe event, then process it; False for an event seen before."""
    try:
        event = gateway().construct_event(payload, signature)
    except InvalidWebhook as error:
        log.warning("stripe webhook rejected: bad signature or payload", extra={"why": str(error)})
        raise BadRequest(_l("Invalid Stripe signature or payload.")) from None
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
    except StripeRejected as rejected:  # e.g. an intent of another account: nothing to apply
        db.session.rollback()
        log.warning(
            "stripe event not applicable", extra={"event": record.id, "why": rejected.message}
        )
    record.processed_at = utcnow()
    db.session.commit()


def _refresh_by_intent(intent_id: str) -> None:
    payment = db.session.scalars(
        select(Payment).where(Payment.stripe_payment_intent_id == intent_id)
    ).one_or_none()
    if payment is not None:
        apply_intent(payment, gateway().retrieve_payment_intent(intent_id))
