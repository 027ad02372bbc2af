"""Charging citizens: once per key, never a float, outcomes announced, failures explained."""

import threading
from datetime import timedelta

import pytest
import stripe
import time_machine
from sqlalchemy import func, select

from core import db
from core.clock import utcnow
from core.errors import InvalidInput
from core.inbox.models import Notification
from payments import service
from payments.gateway import IntentResult
from payments.models import LedgerEntry, Payment, SavedCard
from payments.service import charges
from tests.conftest import count_rows


def _charge(app, user_id, amount=5000, currency="KRW", key="bill-1-attempt-1", **kw):
    with app.app_context():
        payment = service.charge(
            user_id,
            amount,
            currency,
            "hospital_bill",
            key.split("-attempt")[0],
            idempotency_key=key,
            **kw,
        )
        return payment


def test_a_saved_card_is_charged_and_the_owner_module_hears_of_it(
    app, citizen, save_card, outcomes, stripe_server
):
    save_card(citizen)
    payment = _charge(app, citizen.user.id, 5000, "KRW", off_session=True)
    assert (payment.status, payment.amount, payment.currency) == ("succeeded", 5000, "KRW")
    (intent,) = stripe_server.list("payment_intents")
    assert (intent["id"], intent["amount"], intent["currency"]) == (
        payment.stripe_payment_intent_id,
        5000,
        "krw",
    )
    assert intent["metadata"]["payment_id"] == payment.id
    assert [(o.purpose, o.reference, o.amount) for o in outcomes["succeeded"]] == [
        ("hospital_bill", "bill-1", 5000)
    ]
    with app.app_context():
        assert service.balance("hospital_bill", "bill-1") == {"KRW": 5000}


def test_two_decimal_currencies_are_charged_in_cents(app, citizen, save_card, stripe_server):
    save_card(citizen)
    payment = _charge(app, citizen.user.id, 1000, "usd")
    assert (payment.status, payment.currency) == ("succeeded", "USD")
    assert stripe_server.list("payment_intents")[0]["amount"] == 1000


@pytest.mark.parametrize(
    ("amount", "currency", "field"),
    [
        (0, "KRW", "amount"),
        (-5, "KRW", "amount"),
        (10**12, "KRW", "amount"),
        (10.5, "USD", "amount"),
        (100, "XXX", "currency"),
    ],
)
def test_zero_negative_absurd_fractional_amounts_and_unknown_currencies_are_422(
    app, citizen, save_card, amount, currency, field
):
    save_card(citizen)
    before = count_rows(app)
    with app.app_context(), pytest.raises(InvalidInput) as error:
        service.charge(citizen.user.id, amount, currency, "t", "r", idempotency_key="k")
    assert error.value.status == 422 and error.value.field == field
    assert count_rows(app) == before


def test_twenty_concurrent_charges_with_one_key_make_one_payment_intent(
    app, citizen, save_card, stripe_server
):
    save_card(citizen)
    results, errors = [], []

    def pay():
        try:
            results.append(_charge(app, citizen.user.id, 5000, key="bill-7-attempt-1").id)
        except Exception as exc:  # collected: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=pay) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(results) == 20 and len(set(results)) == 1
    assert len(stripe_server.list("payment_intents")) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 1


def test_the_same_key_for_a_different_charge_is_422(app, citizen, save_card):
    save_card(citizen)
    _charge(app, citizen.user.id, 5000, key="bill-2-attempt-1")
    with pytest.raises(InvalidInput, match="different charge"):
        _charge(app, citizen.user.id, 6000, key="bill-2-attempt-1")


def test_a_declined_off_session_charge_fails_with_its_reason_and_asks_the_citizen_to_pay(
    app, citizen, save_card, outcomes
):
    save_card(citizen, "pm_card_chargeCustomerFail")
    payment = _charge(app, citizen.user.id, 5000, off_session=True)
    assert payment.status == "failed"
    assert payment.failure_code == "card_declined" and "declined" in payment.failure_message
    assert [o.payment_id for o in outcomes["failed"]] == [payment.id]
    assert outcomes["succeeded"] == []
    inbox = citizen.api.get("/api/v1/me/notifications")
    assert [(n["kind"], n["data"]["payment_id"]) for n in inbox] == [("payment_failed", payment.id)]
    assert "pay in the app" in inbox[0]["body"]
    with app.app_context():
        assert service.balance("hospital_bill", "bill-1") == {}


def test_an_off_session_charge_needing_authentication_fails_and_asks_the_citizen(
    app, citizen, save_card, outcomes, monkeypatch
):
    save_card(citizen)
    with app.app_context():
        client = service.gateway()._client

    def needs_customer(*_a, **_kw):
        raise stripe.CardError(
            "This payment requires authentication.",
            None,
            "authentication_required",
            json_body={
                "error": {
                    "code": "authentication_required",
                    "payment_intent": {"id": "pi_needs_3ds"},
                }
            },
        )

    monkeypatch.setattr(client.v1.payment_intents, "create", needs_customer)
    payment = _charge(app, citizen.user.id, 5000, off_session=True)
    assert (payment.status, payment.failure_code) == ("failed", "authentication_required")
    assert payment.stripe_payment_intent_id == "pi_needs_3ds"
    assert outcomes["failed"][0].failure_code == "authentication_required"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 1


def test_an_on_session_decline_does_not_fill_the_inbox(app, citizen, save_card):
    save_card(citizen, "pm_card_chargeCustomerFail")
    assert _charge(app, citizen.user.id, 5000).status == "failed"
    assert citizen.api.get("/api/v1/me/notifications") == []


def test_without_a_saved_card_a_charge_is_422(app, citizen):
    with pytest.raises(InvalidInput, match="No saved card"):
        _charge(app, citizen.user.id)


def test_a_payment_stays_pending_when_stripe_is_down_and_the_sweep_settles_it(
    app, citizen, save_card, monkeypatch, outcomes, stripe_outage
):
    save_card(citizen)
    stripe_outage("create_payment_intent")
    payment = _charge(app, citizen.user.id)
    assert payment.status == "pending"
    monkeypatch.undo()
    with app.app_context(), time_machine.travel(utcnow() + timedelta(minutes=6)):
        assert service.reconcile() == 1
        healed = service.get_payment(payment.id)
        # Stripe never saw it: failed, so the owner module can try again with a new attempt.
        assert (healed.status, healed.failure_code) == ("failed", "not_submitted")
    assert [o.failure_code for o in outcomes["failed"]] == ["not_submitted"]


def test_a_process_killed_after_stripe_succeeded_is_healed_by_the_sweep(
    app, citizen, save_card, monkeypatch, outcomes, stripe_server
):
    save_card(citizen)

    def crash(*_a, **_kw):
        raise SystemExit("killed between Stripe and our commit")

    monkeypatch.setattr(charges, "settle_intent", crash)
    with pytest.raises(SystemExit):
        _charge(app, citizen.user.id, 5000)
    monkeypatch.undo()
    with app.app_context():
        (payment,) = db.session.scalars(select(Payment)).all()
        assert (payment.status, payment.stripe_payment_intent_id) == ("pending", None)
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
        # a fresh payment is left alone: it may still be in flight
        assert service.reconcile() == 0
        with time_machine.travel(utcnow() + timedelta(minutes=6)):
            assert service.reconcile() == 1
            assert service.reconcile() == 0  # settled rows are not touched again
        db.session.expire_all()
        payment = service.get_payment(payment.id)
        assert payment.status == "succeeded"
        assert payment.stripe_payment_intent_id == stripe_server.list("payment_intents")[0]["id"]
        assert service.balance("hospital_bill", "bill-1") == {"KRW": 5000}
    assert len(outcomes["succeeded"]) == 1


def test_a_charge_stripe_refuses_outright_fails_with_stripes_reason(
    app, citizen, save_card, outcomes
):
    save_card(citizen)
    payment = _charge(app, citizen.user.id, payment_method="pm_does_not_exist")
    assert payment.status == "failed" and payment.failure_message
    assert [o.payment_id for o in outcomes["failed"]] == [payment.id]


@pytest.mark.postgresql_only
def test_a_second_sweeper_skips_the_payments_the_first_one_holds(
    app, citizen, save_card, monkeypatch, stripe_outage
):
    save_card(citizen)
    stripe_outage("create_payment_intent")
    payment = _charge(app, citizen.user.id)
    monkeypatch.undo()
    later = utcnow() + timedelta(minutes=6)
    with app.app_context():
        with db.engine().connect() as other_sweeper:
            other_sweeper.execute(select(Payment).where(Payment.id == payment.id).with_for_update())
            with time_machine.travel(later):
                assert service.reconcile() == 0  # SKIP LOCKED: not waiting, not touching
            other_sweeper.rollback()
        with time_machine.travel(later):
            assert service.reconcile() == 1


def test_a_canceled_intent_tells_the_owner_module_it_was_not_paid(
    app, citizen, save_card, monkeypatch, outcomes, stripe_outage
):
    save_card(citizen)
    stripe_outage("create_payment_intent")
    payment = _charge(app, citizen.user.id)
    canceled = IntentResult("pi_c", "canceled", 5000, 0, "krw", None, None, None, {})
    with app.app_context():
        service.apply_intent(service.get_payment(payment.id), canceled)
        assert service.get_payment(payment.id).status == "canceled"
    assert [(o.payment_id, o.status) for o in outcomes["failed"]] == [(payment.id, "canceled")]


def test_a_card_another_account_saved_is_refused_and_nothing_is_asked_of_stripe(
    app, client, make_account, save_card, stripe_server
):
    # Found by the authorization matrix's probing: charge() took any PaymentMethod id, so a
    # citizen who knew another's saved card could pay with it (localstripe let it through).
    owner, other = make_account("citizen"), make_account("citizen")
    card = save_card(owner)
    with app.app_context():
        method = db.session.scalar(
            select(SavedCard.stripe_payment_method_id).where(SavedCard.id == card["id"])
        )
    before = count_rows(app)
    with pytest.raises(InvalidInput) as refused:
        _charge(app, other.user.id, payment_method=method)
    assert (refused.value.status, refused.value.field) == (422, "payment_method")
    assert count_rows(app) == before
    assert stripe_server.list("payment_intents") == []

    owner.api.request("DELETE", f"/api/v1/payments/methods/{card['id']}", 204)
    with pytest.raises(InvalidInput):  # removed, and still not anyone else's
        _charge(app, other.user.id, payment_method=method, key="bill-2-attempt-1")
    assert stripe_server.list("payment_intents") == []
