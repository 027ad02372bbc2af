"""Stripe customers and cards saved for off-session charges, with the citizen's consent."""

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import db
from core.auth.service import get_user
from core.clock import utcnow
from core.errors import InvalidInput, NotFound
from core.i18n import _l
from payments.gateway import StripeRejected
from payments.models import SavedCard, StripeCustomer
from payments.reasons import CARD_NOT_SAVED, failure_reason
from payments.service.base import gateway


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
            _l("Consent must be given to the current text (version %(version)s).", version=current),
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
        reason = failure_reason(rejected.code, default=CARD_NOT_SAVED)
        raise InvalidInput(reason, field="payment_method") from None
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
        raise NotFound(_l("No such card."))
    gateway().detach_payment_method(card.stripe_payment_method_id)
    card.removed_at = utcnow()
    db.session.commit()


def default_card(user_id: str) -> str:
    cards = list_cards(user_id)
    if not cards:
        raise InvalidInput(_l("No saved card; save one first."), field="payment_method")
    return cards[0].stripe_payment_method_id
