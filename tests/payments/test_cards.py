"""Saved cards: a refused card writes nothing, and a card is one citizen's only."""

import pytest
from sqlalchemy import select

from core import db
from payments import service
from payments.models import SavedCard, StripeCustomer
from tests.conftest import count_rows
from tests.payments.conftest import CONSENT, METHODS


def _card(app, card_id) -> SavedCard:
    with app.app_context():
        card = db.session.get(SavedCard, card_id)
        assert card is not None
        return card


def _method_of(app, card_id):
    return _card(app, card_id).stripe_payment_method_id


def _customer_of(app, user_id):
    with app.app_context():
        customer = db.session.get(StripeCustomer, user_id)
        assert customer is not None
        return customer.stripe_customer_id


def _attached_to(app, payment_method):
    with app.app_context():
        return service.gateway().retrieve_payment_method(payment_method).customer_id


@pytest.mark.parametrize(
    ("card", "reason"),
    [
        ("pm_card_visa_chargeDeclined", "Your card was declined."),
        ("3ds", "Your bank needs you to confirm this payment."),
        ("pm_does_not_exist", "This card could not be saved. Please check it or use another card."),
    ],
    ids=["declined", "3ds", "unknown"],
)
def test_a_card_stripe_refuses_leaves_no_customer_and_no_card(
    app, citizen, card_needing_3ds, card, reason
):
    payment_method = card_needing_3ds() if card == "3ds" else card
    before = count_rows(app)
    error = citizen.api.post(METHODS, {"payment_method": payment_method, **CONSENT}, expected=422)
    assert error["errors"]["json"] == {"payment_method": [reason]}
    assert count_rows(app) == before
    with app.app_context():
        assert db.session.get(StripeCustomer, citizen.user.id) is None


def test_a_saved_card_is_attached_to_the_citizens_customer(app, citizen, save_card):
    card = save_card(citizen)
    method = _method_of(app, card["id"])
    assert _attached_to(app, method) == _customer_of(app, citizen.user.id)


def test_a_card_attached_to_another_citizens_customer_is_refused(
    app, citizen, make_account, save_card
):
    card = save_card(citizen)
    method = _method_of(app, card["id"])
    other = make_account("citizen")
    before = count_rows(app)
    error = other.api.post(METHODS, {"payment_method": method, **CONSENT}, expected=422)
    assert error["errors"]["json"]["payment_method"] == ["This card belongs to another account."]
    assert count_rows(app) == before
    assert _attached_to(app, method) == _customer_of(app, citizen.user.id)
    assert other.api.get(METHODS) == []


def test_a_card_another_citizen_saved_is_refused_even_if_stripe_shows_it_loose(
    app, citizen, make_account, save_card
):
    card = save_card(citizen)
    method = _method_of(app, card["id"])
    with app.app_context():
        service.gateway().detach_payment_method(method)  # as localstripe used to leave it
    other = make_account("citizen")
    other.api.post(METHODS, {"payment_method": method, **CONSENT}, expected=422)


def test_a_citizens_delete_never_detaches_another_citizens_card(
    app, citizen, make_account, save_card
):
    card = save_card(citizen)
    method = _method_of(app, card["id"])
    other = make_account("citizen")
    save_card(other)  # the other citizen has a Stripe customer of their own
    with app.app_context():  # a row saved before the check existed: the same card, twice
        db.session.add(
            SavedCard(
                user_id=other.user.id,
                stripe_payment_method_id=method,
                setup_intent_id="seti_legacy",
                consent_version="2026-11",
                consented_at=_card(app, card["id"]).consented_at,
            )
        )
        db.session.commit()
        legacy = db.session.scalars(
            select(SavedCard.id).where(SavedCard.setup_intent_id == "seti_legacy")
        ).one()
    other.api.request("DELETE", f"{METHODS}/{legacy}", 204)
    assert _attached_to(app, method) == _customer_of(app, citizen.user.id)
    assert [c["id"] for c in citizen.api.get(METHODS)] == [card["id"]]


def test_removing_my_card_detaches_it_at_stripe(app, citizen, save_card):
    card = save_card(citizen)
    method = _method_of(app, card["id"])
    citizen.api.request("DELETE", f"{METHODS}/{card['id']}", 204)
    assert _attached_to(app, method) is None


def test_when_stripe_is_down_a_card_is_neither_saved_nor_removed_and_the_answer_is_503(
    app, citizen, save_card, stripe_outage
):
    card = save_card(citizen)
    stripe_outage("create_setup_intent")
    stripe_outage("retrieve_payment_method")
    before = count_rows(app)
    error = citizen.api.post(METHODS, {"payment_method": "pm_card_visa", **CONSENT}, expected=503)
    assert error["message"] == "The payment service is unavailable. Please try again later."
    citizen.api.request("DELETE", f"{METHODS}/{card['id']}", 503)
    assert count_rows(app) == before
    assert [c["id"] for c in citizen.api.get(METHODS)] == [card["id"]]
