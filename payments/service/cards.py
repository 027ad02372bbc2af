"""Stripe customers and cards saved for off-session charges, with the citizen's consent.

Stripe is asked first and our rows are written last, in one transaction: a card Stripe refuses
leaves no row behind (not even the customer's). A card belongs to one citizen: one attached to
another customer is refused, and removing a card never detaches one that is not the citizen's.
"""

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import db
from core.auth.service import get_user
from core.clock import utcnow
from core.errors import InvalidInput, NotFound
from core.i18n import _l
from payments.errors import StripeUnavailable
from payments.gateway import GatewayUnavailable, SetupResult, StripeRejected
from payments.models import SavedCard, StripeCustomer
from payments.reasons import CARD_NOT_SAVED, failure_reason
from payments.service.base import before_stripe, gateway, log, unit_of_work

ANOTHER_ACCOUNTS_CARD = _l("This card belongs to another account.")


@unit_of_work
def ensure_customer(user_id: str) -> str:
    """The citizen's Stripe customer id, creating the customer the first time."""
    return customer_id_of(user_id)


def customer_id_of(user_id: str) -> str:
    """The citizen's Stripe customer id; creates it at Stripe, then our row, and commits."""
    existing = db.session.get(StripeCustomer, user_id)
    if existing is not None:
        return existing.stripe_customer_id
    customer_id = _create_at_stripe(user_id)
    db.session.add(StripeCustomer(user_id=user_id, stripe_customer_id=customer_id))
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent request created one first: use theirs
        db.session.rollback()
        return _recorded_customer(user_id)
    return customer_id


def _create_at_stripe(user_id: str) -> str:
    user = get_user(user_id)
    email, name = user.email, user.name
    before_stripe()
    return gateway().create_customer(
        email=email, name=name, citizen_id=user_id, idempotency_key=f"customer-{user_id}"
    )


def _recorded_customer(user_id: str) -> str:
    recorded = db.session.get(StripeCustomer, user_id)
    assert recorded is not None
    return recorded.stripe_customer_id


@unit_of_work
def save_card(user_id: str, payment_method: str, consent_version: str) -> SavedCard:
    """Save a card for later off-session charges (a SetupIntent), recording the consent.

    A card Stripe refuses, or one attached to another customer, is 422 and writes nothing.
    """
    current = current_app.config["OFF_SESSION_CONSENT_VERSION"]
    if consent_version != current:
        raise InvalidInput(
            _l("Consent must be given to the current text (version %(version)s).", version=current),
            field="consent_text_version",
        )
    if _saved_by_another(user_id, payment_method):
        raise InvalidInput(ANOTHER_ACCOUNTS_CARD, field="payment_method")
    known = db.session.get(StripeCustomer, user_id)
    consented_at = utcnow()
    try:
        customer_id = known.stripe_customer_id if known else _create_at_stripe(user_id)
        before_stripe()
        setup = _set_up(customer_id, payment_method, f"setup-{user_id}-{consented_at.timestamp()}")
    except StripeRejected as rejected:  # declined, needs 3-D Secure, or unknown to Stripe
        log.info("card not saved", extra={"code": rejected.code, "why": rejected.message})
        reason = failure_reason(rejected.code, default=CARD_NOT_SAVED)
        raise InvalidInput(reason, field="payment_method") from None
    except GatewayUnavailable:
        raise StripeUnavailable() from None
    if known is None:
        db.session.add(StripeCustomer(user_id=user_id, stripe_customer_id=customer_id))
    card = SavedCard(
        user_id=user_id,
        stripe_payment_method_id=setup.payment_method_id,
        setup_intent_id=setup.id,
        brand=setup.brand,
        last4=setup.last4,
        consent_version=consent_version,
        consented_at=consented_at,
    )
    return _record_card(card, customer_known=known is not None)


def _set_up(customer_id: str, payment_method: str, idempotency_key: str) -> SetupResult:
    """Check the card is not another customer's, confirm a SetupIntent, attach the card."""
    stripe = gateway()
    method = stripe.retrieve_payment_method(payment_method)
    if method.customer_id not in (None, customer_id):
        raise InvalidInput(ANOTHER_ACCOUNTS_CARD, field="payment_method")
    setup = stripe.create_setup_intent(
        customer_id=customer_id, payment_method=payment_method, idempotency_key=idempotency_key
    )
    if setup.customer_id is None:  # localstripe leaves the card loose; Stripe attaches it
        stripe.attach_payment_method(setup.payment_method_id, customer_id)
    return setup


def _record_card(card: SavedCard, *, customer_known: bool) -> SavedCard:
    db.session.add(card)
    try:
        db.session.commit()
    except IntegrityError:
        if customer_known:
            raise
        db.session.rollback()  # a concurrent request recorded the customer first: keep theirs
        db.session.add(card)
        db.session.commit()
    return card


def _saved_by_another(user_id: str, payment_method: str) -> bool:
    query = select(SavedCard.id).where(
        SavedCard.stripe_payment_method_id == payment_method,
        SavedCard.user_id != user_id,
        SavedCard.removed_at.is_(None),
    )
    return db.session.scalar(query.limit(1)) is not None


def refuse_anothers_card(user_id: str, payment_method: str) -> None:
    """422 when ``payment_method`` is a card another account saved (even one it removed since):
    a citizen may pay with their own cards or a new one, never with someone else's."""
    query = select(SavedCard.id).where(
        SavedCard.stripe_payment_method_id == payment_method, SavedCard.user_id != user_id
    )
    if db.session.scalar(query.limit(1)) is not None:
        raise InvalidInput(ANOTHER_ACCOUNTS_CARD, field="payment_method")


def list_cards(user_id: str) -> list[SavedCard]:
    query = select(SavedCard).where(SavedCard.user_id == user_id, SavedCard.removed_at.is_(None))
    return list(db.session.scalars(query.order_by(SavedCard.created_at.desc())))


@unit_of_work
def remove_card(user_id: str, card_id: str) -> None:
    """Forget the card, and detach it at Stripe when it is attached to this citizen's customer
    (never another's). Another citizen's card is 404."""
    card = db.session.get(SavedCard, card_id)
    if card is None or card.user_id != user_id or card.removed_at is not None:
        raise NotFound(_l("No such card."))
    method_id = card.stripe_payment_method_id
    customer = db.session.get(StripeCustomer, user_id)
    customer_id = customer.stripe_customer_id if customer else None
    shared = _saved_by_another(user_id, method_id)
    before_stripe()
    try:
        if customer_id and not shared:
            _detach_if_owned(method_id, customer_id)
    except GatewayUnavailable:
        raise StripeUnavailable() from None
    card = db.session.get(SavedCard, card_id)
    assert card is not None
    card.removed_at = utcnow()
    db.session.commit()


def _detach_if_owned(method_id: str, customer_id: str) -> None:
    try:
        owner = gateway().retrieve_payment_method(method_id).customer_id
    except StripeRejected:  # gone at Stripe: nothing to detach
        return
    if owner == customer_id:
        gateway().detach_payment_method(method_id)
    else:
        log.warning(
            "saved card not detached: not attached to this citizen's customer",
            extra={"payment_method": method_id},
        )


def default_card(user_id: str) -> str:
    cards = list_cards(user_id)
    if not cards:
        raise InvalidInput(_l("No saved card; save one first."), field="payment_method")
    return cards[0].stripe_payment_method_id
