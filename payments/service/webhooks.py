"""Stripe's webhook: verified, stored once by event id, applied by re-fetching the object.

Events name an object; we never trust the object in the body (it may be stale, events arrive
out of order) but ask Stripe for it now and apply that, forward only:

- ``payment_intent.*``: the payment;
- ``refund.created``, ``refund.updated``, ``refund.failed``, ``charge.refund.updated`` (a
  Refund): that refund, ours or one made in Stripe's dashboard;
- ``charge.refunded`` (a Charge): every refund of the charge.
"""

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import db
from core.clock import utcnow
from core.errors import BadRequest
from core.i18n import _l
from payments.gateway import GatewayUnavailable, InvalidWebhook, StripeRejected
from payments.gateway import WebhookEvent as StripeEvent
from payments.models import Payment, WebhookEvent
from payments.service.base import before_stripe, gateway, log, unit_of_work
from payments.service.charges import settle_intent
from payments.service.refunds import apply_refund_from_stripe

REFUND_EVENTS = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)
CHARGE_REFUND_EVENTS = frozenset({"charge.refunded"})
# What Stripe's ids and event types look like; anything else is not an event of Stripe's and
# would not fit our columns (ids 255 characters, types 100).
_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
_EVENT_TYPE = re.compile(r"[a-z0-9_.]{1,100}")
INVALID_EVENT = _l("Invalid Stripe signature or payload.")


@unit_of_work
def receive_webhook(payload: bytes, signature: str) -> bool:
    """Verify and store a Stripe event, then process it; False for an event seen before."""
    try:
        event = gateway().construct_event(payload, signature)
    except InvalidWebhook as error:
        log.warning("stripe webhook rejected: bad signature or payload", extra={"why": str(error)})
        raise BadRequest(INVALID_EVENT) from None
    _refuse_malformed(event)
    record = WebhookEvent(id=event.id, type=event.type, object_id=event.object_id)
    db.session.add(record)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        log.info("stripe webhook already received", extra={"event": event.id})
        return False
    settle_event(record)
    return True


def _refuse_malformed(event: StripeEvent) -> None:
    """A signed body whose id, type or object id is not shaped like Stripe's is a 400 that
    writes nothing (a NUL, a 300-character id: PostgreSQL would refuse it with a 500)."""
    fields = {"id": event.id, "type": event.type, "object_id": event.object_id}
    shapes = {"id": _STRIPE_ID, "type": _EVENT_TYPE, "object_id": _STRIPE_ID}
    for name, value in fields.items():
        if value is None and name == "object_id":
            continue
        if not isinstance(value, str) or not shapes[name].fullmatch(value):
            log.warning("stripe webhook rejected: malformed event", extra={"field": name})
            raise BadRequest(INVALID_EVENT)


@unit_of_work
def process_event(record: WebhookEvent) -> None:
    """Apply an event by re-fetching its object (events may be stale or out of order)."""
    settle_event(record)


def settle_event(record: WebhookEvent) -> None:
    """:func:`process_event` inside payments' own unit of work."""
    event_id, event_type, object_id = record.id, record.type, record.object_id
    try:
        if object_id and event_type.startswith("payment_intent."):
            _refresh_intent(object_id)
        elif object_id and event_type in REFUND_EVENTS:
            _refresh_refund(object_id)
        elif object_id and event_type in CHARGE_REFUND_EVENTS:
            _refresh_refunds_of_charge(object_id)
    except GatewayUnavailable:
        db.session.rollback()
        return  # processed_at stays empty: the sweep retries
    except StripeRejected as rejected:  # e.g. an object of another account: nothing to apply
        db.session.rollback()
        log.warning(
            "stripe event not applicable", extra={"event": event_id, "why": rejected.message}
        )
    stored = db.session.get(WebhookEvent, event_id)
    assert stored is not None
    stored.processed_at = utcnow()
    db.session.commit()


def _refresh_intent(intent_id: str) -> None:
    payment = db.session.scalars(
        select(Payment).where(Payment.stripe_payment_intent_id == intent_id)
    ).one_or_none()
    before_stripe()
    if payment is not None:
        settle_intent(payment, gateway().retrieve_payment_intent(intent_id))


def _refresh_refund(refund_id: str) -> None:
    before_stripe()
    result = gateway().retrieve_refund(refund_id)
    intent_id = result.payment_intent_id
    if intent_id is None and result.charge_id:
        intent_id = gateway().intent_of_charge(result.charge_id)
    apply_refund_from_stripe(result, intent_id)


def _refresh_refunds_of_charge(charge_id: str) -> None:
    before_stripe()
    intent_id = gateway().intent_of_charge(charge_id)
    for result in gateway().refunds_of_charge(charge_id):
        apply_refund_from_stripe(result, result.payment_intent_id or intent_id)
        before_stripe()
