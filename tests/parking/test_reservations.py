"""Reserving and paying in one tap; the rules; no double booking, ever; the sensor-driven
lifecycle (arrival, departure, overstay, no-show, a space taken by someone else); cancelling."""

import threading
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from core import db
from core.clock import utcnow
from core.idempotency import ABANDONED_AFTER, IdempotencyRecord
from core.inbox.models import Notification
from parking.models import Reservation
from parking.service import reservations
from payments import service as payments
from payments.models import SavedCard
from payments.service import refunds as payment_refunds
from payments.signals import PaymentOutcome
from tests.conftest import count_rows
from tests.parking.conftest import P, in_minutes
from tests.payments.conftest import CONSENT, METHODS

R = f"{P}/reservations"


@pytest.fixture(autouse=True)
def _stripe(stripe_server):
    return stripe_server


@pytest.fixture(autouse=True)
def _long_tokens(app, monkeypatch):
    """These tests travel hours ahead: keep the citizens' access tokens valid meanwhile."""
    monkeypatch.setitem(app.config, "ACCESS_TOKEN_MINUTES", 24 * 60)


@pytest.fixture
def payer(citizen):
    """A citizen with a saved card."""
    citizen.api.post(METHODS, {"payment_method": "pm_card_visa", **CONSENT}, expected=201)
    return citizen


def _reserve(account, lot, space=0, start=30, minutes=60, expected=201, **extra):
    base = utcnow()
    body = {
        "space_id": lot.space(space),
        "starts_at": (base + timedelta(minutes=start)).isoformat(),
        "ends_at": (base + timedelta(minutes=start + minutes)).isoformat(),
        "vehicle_plate": "12가3456",
        **extra,
    }
    return account.api.post(R, body, expected=expected)


def _sweep(app):
    with app.app_context():
        return reservations.sweep()


def _inbox(app, user_id):
    with app.app_context():
        query = select(Notification.kind).where(Notification.user_id == user_id)
        return list(db.session.scalars(query.order_by(Notification.created_at)))


def test_a_citizen_reserves_a_space_and_pays_with_the_saved_card_in_one_tap(app, lot, payer):
    reservation = _reserve(payer, lot, minutes=60)
    assert (reservation["status"], reservation["quote_amount"], reservation["currency"]) == (
        "confirmed",
        6000,
        "KRW",
    )
    assert reservation["payment"]["status"] == "succeeded"
    assert reservation["amount_paid"] == 6000
    with app.app_context():
        assert payments.balance("parking_reservation", reservation["id"]) == {"KRW": 6000}
    assert payer.api.get(f"{R}/{reservation['id']}")["status"] == "confirmed"


def test_reserving_by_lot_picks_a_free_space(lot, payer, report):
    report(lot, {0: True, 1: False, 2: True})
    body = {
        "lot_id": lot.id,
        "starts_at": in_minutes(5),
        "ends_at": in_minutes(65),
        "vehicle_plate": "12가3456",
    }
    reservation = payer.api.post(R, body, expected=201)
    assert reservation["space_id"] == lot.space(1)


@pytest.mark.parametrize(
    ("start", "minutes", "rule"),
    [
        (30, 10, "duration"),
        (30, 25 * 60, "duration"),
        (-30, 60, "not_in_past"),
        (8 * 24 * 60, 60, "within_7_days"),
    ],
)
def test_each_rule_refuses_with_422_naming_it_and_writes_nothing(
    app, lot, payer, start, minutes, rule
):
    before = count_rows(app)
    refused = _reserve(payer, lot, start=start, minutes=minutes, expected=422)
    assert refused["rule"] == rule
    assert count_rows(app) == before


def test_a_citizen_may_hold_at_most_two_open_reservations(lot, payer):
    _reserve(payer, lot, space=0)
    _reserve(payer, lot, space=1)
    assert _reserve(payer, lot, space=2, expected=422)["rule"] == "max_open_reservations"


def test_without_a_saved_card_the_reservation_is_refused_before_anything_is_written(
    app, lot, citizen
):
    before = count_rows(app)
    refused = _reserve(citizen, lot, expected=422)
    assert "payment_method" in refused["errors"]["json"]
    assert count_rows(app) == before


def test_an_overlapping_reservation_of_the_same_space_is_409_and_writes_nothing(
    app, lot, payer, make_account
):
    _reserve(payer, lot, start=30, minutes=60)
    other = make_account("citizen")
    other.api.post(METHODS, {"payment_method": "pm_card_visa", **CONSENT}, expected=201)
    before = count_rows(app)
    _reserve(other, lot, start=60, minutes=60, expected=409)
    assert count_rows(app) == before
    _reserve(other, lot, start=90, minutes=60)  # right after: allowed


def test_two_hundred_concurrent_attempts_for_one_space_and_window_make_exactly_one(
    app, lot, make_account
):
    """The same on both backends: PostgreSQL's exclusion constraint, SQLite's BEGIN IMMEDIATE."""
    citizens = [make_account("citizen") for _ in range(5)]
    outcome = race_for_one_space(app, lot, citizens, attempts=200)
    assert (outcome.count("held"), outcome.count("conflict"), len(outcome)) == (1, 199, 200)
    with app.app_context():
        held = db.session.scalars(select(Reservation)).all()
    assert [r.space_id for r in held] == [lot.space(0)]


def race_for_one_space(app, lot, accounts, attempts: int) -> list[str]:
    """``attempts`` threads try to hold one space for one window at once."""
    from parking.errors import ReservationConflict, RuleBroken

    start = utcnow() + timedelta(minutes=30)
    barrier = threading.Barrier(attempts)
    outcome: list[str] = []

    def attempt(index: int) -> None:
        user = accounts[index % len(accounts)].user
        with app.app_context():
            barrier.wait()
            try:
                reservations._hold(
                    user.id,
                    {"space_id": lot.space(0), "vehicle_plate": f"R{index}"},
                    start,
                    start + timedelta(hours=1),
                )
                outcome.append("held")
            except ReservationConflict:
                outcome.append("conflict")
            except RuleBroken:
                outcome.append("rule")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcome


# --- the sensor drives it ----------------------------------------------------------------------


def _at(moment):
    return time_machine.travel(moment, tick=True)


def _reservation(app, reservation_id):
    with app.app_context():
        return db.session.get(Reservation, reservation_id)


def test_arrival_then_departure_after_the_end_charges_the_overstay_with_an_inbox_message(
    app, lot, payer, report
):
    reservation = _reserve(payer, lot, start=30, minutes=60)
    starts = utcnow() + timedelta(minutes=30)
    with _at(starts - timedelta(minutes=5)):
        report(lot, {0: True})
        _sweep(app)
        assert payer.api.get(f"{R}/{reservation['id']}")["status"] == "active"
    with _at(starts + timedelta(minutes=95)):  # 35 minutes past the end (grace is 15)
        report(lot, {0: False})
        _sweep(app)
        _sweep(app)  # a second sweep charges nothing more
    done = payer.api.get(f"{R}/{reservation['id']}")
    assert (done["status"], done["overstay_amount"]) == ("completed", 4000)  # 10 units - 6
    with app.app_context():
        assert payments.balance("parking_overstay", reservation["id"]) == {"KRW": 4000}
    assert _reservation(app, reservation["id"]).overstay_paid == 4000
    assert "parking_overstay" in _inbox(app, payer.user.id)


def test_leaving_within_the_grace_period_costs_nothing_more(app, lot, payer, report):
    reservation = _reserve(payer, lot, start=30, minutes=60)
    starts = utcnow() + timedelta(minutes=30)
    with _at(starts + timedelta(minutes=1)):
        report(lot, {0: True})
        _sweep(app)
    with _at(starts + timedelta(minutes=70)):
        report(lot, {0: False})
        _sweep(app)
    done = payer.api.get(f"{R}/{reservation['id']}")
    assert (done["status"], done["overstay_amount"]) == ("completed", 0)
    assert "parking_overstay" not in _inbox(app, payer.user.id)


def test_a_no_show_is_released_after_the_grace_period_and_keeps_the_policy_fee(
    app, lot, payer, make_account, monkeypatch, report
):
    monkeypatch.setitem(app.config, "PARKING_NO_SHOW_FEE_PERCENT", 50)
    reservation = _reserve(payer, lot, start=30, minutes=60)
    starts = utcnow() + timedelta(minutes=30)
    with _at(starts + timedelta(minutes=16)):
        report(lot, {0: False}, at=utcnow())  # the sensor is there, and the space still free
        _sweep(app)
        released = payer.api.get(f"{R}/{reservation['id']}")
        assert (released["status"], released["fee_amount"]) == ("no_show", 3000)
        other = make_account("citizen")
        other.api.post(METHODS, {"payment_method": "pm_card_visa", **CONSENT}, expected=201)
        _reserve(other, lot, start=1, minutes=30)  # the space is free to book again
    with app.app_context():
        assert payments.balance("parking_reservation", reservation["id"]) == {"KRW": 3000}
    assert _reservation(app, reservation["id"]).amount_paid == 3000
    assert "parking_no_show" in _inbox(app, payer.user.id)


def test_a_reservation_whose_sensor_fell_silent_is_released_and_refunded_in_full_not_fined(
    app, lot, payer, report
):
    reservation = _reserve(payer, lot, start=30, minutes=60)
    report(lot, {0: False})  # last heard now; silent from here on
    starts = utcnow() + timedelta(minutes=30)
    with _at(starts + timedelta(minutes=16)):  # 46 minutes of silence: offline
        _sweep(app)
    released = payer.api.get(f"{R}/{reservation['id']}")
    assert (released["status"], released["closed_reason"], released["fee_amount"]) == (
        "canceled",
        "sensor_offline",
        0,
    )
    with app.app_context():
        assert payments.balance("parking_reservation", reservation["id"]) == {"KRW": 0}
    assert "parking_refunded" in _inbox(app, payer.user.id)


def test_a_space_taken_by_someone_else_at_the_start_moves_the_reservation_to_a_free_one(
    app, lot, payer, report
):
    reservation = _reserve(payer, lot, start=30, minutes=60)
    report(lot, {0: True, 1: False, 2: True})  # a stranger parked on space 0 long before
    starts = utcnow() + timedelta(minutes=30)
    with _at(starts + timedelta(minutes=1)):
        report(lot, {0: True, 1: False, 2: True}, at=utcnow())  # heartbeats: still the same
        _sweep(app)
    moved = payer.api.get(f"{R}/{reservation['id']}")
    assert (moved["status"], moved["space_id"]) == ("confirmed", lot.space(1))
    assert "parking_moved" in _inbox(app, payer.user.id)


def test_a_space_taken_when_no_other_is_free_is_refunded_in_full(app, lot, payer, report):
    reservation = _reserve(payer, lot, start=30, minutes=60)
    report(lot, {0: True, 1: True, 2: True})
    starts = utcnow() + timedelta(minutes=30)
    with _at(starts + timedelta(minutes=1)):
        report(lot, {0: True, 1: True, 2: True}, at=utcnow())
        _sweep(app)
    refunded = payer.api.get(f"{R}/{reservation['id']}")
    assert (refunded["status"], refunded["closed_reason"], refunded["amount_paid"]) == (
        "canceled",
        "space_taken",
        0,
    )
    with app.app_context():
        assert payments.balance("parking_reservation", reservation["id"]) == {"KRW": 0}
    assert "parking_refunded" in _inbox(app, payer.user.id)


def test_a_reminder_goes_to_the_inbox_once_before_the_start(app, lot, payer):
    _reserve(payer, lot, start=60, minutes=60)
    _sweep(app)
    assert "parking_reminder" not in _inbox(app, payer.user.id)
    with _at(utcnow() + timedelta(minutes=40)):
        _sweep(app)
        _sweep(app)
    assert _inbox(app, payer.user.id).count("parking_reminder") == 1


# --- paying and cancelling ---------------------------------------------------------------------


def test_a_declined_card_leaves_a_hold_that_expires_and_frees_the_space(app, lot, citizen):
    citizen.api.post(
        METHODS, {"payment_method": "pm_card_chargeCustomerFail", **CONSENT}, expected=201
    )
    held = _reserve(citizen, lot)
    assert (held["status"], held["payment"]["status"]) == ("held", "failed")
    assert held["payment_failure"]
    with _at(utcnow() + timedelta(minutes=11)):
        _sweep(app)
    assert citizen.api.get(f"{R}/{held['id']}")["status"] == "expired"


def test_paying_again_with_another_card_confirms_a_declined_hold(app, lot, citizen):
    citizen.api.post(
        METHODS, {"payment_method": "pm_card_chargeCustomerFail", **CONSENT}, expected=201
    )
    held = _reserve(citizen, lot)
    paid = citizen.api.post(
        f"{R}/{held['id']}/pay", {"payment_method": "pm_card_visa"}, expected=200
    )
    assert (paid["status"], paid["payment"]["status"], paid["amount_paid"]) == (
        "confirmed",
        "succeeded",
        6000,
    )
    citizen.api.post(f"{R}/{held['id']}/pay", {}, expected=409)


def test_cancelling_early_is_free_and_refunds_everything(app, lot, payer):
    reservation = _reserve(payer, lot, start=120)
    canceled = payer.api.post(f"{R}/{reservation['id']}/cancel", expected=200)
    assert (canceled["status"], canceled["fee_amount"], canceled["amount_paid"]) == (
        "canceled",
        0,
        0,
    )
    _reserve(payer, lot, start=120)  # the space is free again
    payer.api.post(f"{R}/{reservation['id']}/cancel", expected=409)


def _as_if_its_worker_died(app, key):
    """The key's claim as a SIGKILLed worker leaves it: never finished, and old enough
    (core.idempotency.ABANDONED_AFTER) for a retry to take it over."""
    with app.app_context():
        record = db.session.scalars(
            select(IdempotencyRecord).where(IdempotencyRecord.key == key)
        ).one()
        record.completed_at = record.response_status = record.response_body = None
        record.created_at = utcnow() - ABANDONED_AFTER - timedelta(minutes=1)
        db.session.commit()


def test_a_reservation_retried_after_its_worker_died_carries_on_the_same_hold(
    app, lot, payer, stripe_server
):
    # Found by `make crash`: the retry that took the key over held and charged a second space.
    body = {
        "lot_id": lot.id,
        "starts_at": in_minutes(60),
        "ends_at": in_minutes(120),
        "vehicle_plate": "12가3456",
    }
    key = {"Idempotency-Key": "reserve-once"}
    first = payer.api.post(R, body, expected=201, headers=key)
    _as_if_its_worker_died(app, "reserve-once")
    again = payer.api.post(R, body, expected=201, headers=key)
    assert (again["id"], again["status"]) == (first["id"], "confirmed")
    assert again["payment"]["id"] == first["payment"]["id"]
    assert count_rows(app)["parking_reservations"] == 1
    assert len(stripe_server.list("payment_intents")) == 1
    other = payer.api.post(R, body, expected=201, headers={"Idempotency-Key": "another"})
    assert other["id"] != first["id"]  # another key is another reservation


class _Killed(BaseException):
    """The API worker dying (SIGKILL) between the cancellation's commit and its refund."""


def test_a_cancellation_retried_after_a_crash_before_its_refund_refunds_once(
    app, lot, payer, stripe_server, monkeypatch
):
    reservation = _reserve(payer, lot, start=120)
    with monkeypatch.context() as patch:

        def killed(*args, **kwargs):
            raise _Killed

        patch.setattr(reservations, "_refund", killed)
        with pytest.raises(_Killed):
            payer.api.post(f"{R}/{reservation['id']}/cancel", expected=200)
    with app.app_context():
        assert payments.balance("parking_reservation", reservation["id"]) == {"KRW": 6000}
    for _ in range(2):  # the retry, then another
        payer.api.post(f"{R}/{reservation['id']}/cancel", expected=409)
    with app.app_context():
        assert payments.balance("parking_reservation", reservation["id"]) == {"KRW": 0}
    assert len(stripe_server.list("refunds")) == 1
    assert payer.api.get(f"{R}/{reservation['id']}")["status"] == "canceled"


def test_a_refund_a_crash_stopped_before_stripe_is_asked_again(
    app, lot, payer, stripe_server, monkeypatch
):
    # Found by `make crash`: payments fails such a refund, and nobody asked again.
    reservation = _reserve(payer, lot, start=120)
    with monkeypatch.context() as patch:

        def killed(*args, **kwargs):
            raise _Killed

        patch.setattr(payment_refunds, "_submit_refund", killed)
        with pytest.raises(_Killed):
            payer.api.post(f"{R}/{reservation['id']}/cancel", expected=200)
    with app.app_context(), time_machine.travel(utcnow() + timedelta(minutes=6)):
        assert payments.reconcile() == 1  # never reached Stripe: failed, and parking asks again
        assert payments.balance("parking_reservation", reservation["id"]) == {"KRW": 0}
        first, second = payments.refunds_of(reservation["payment"]["id"])
    assert (first.status, second.status, second.amount) == ("failed", "succeeded", 6000)
    assert len(stripe_server.list("refunds")) == 1
    assert payer.api.get(f"{R}/{reservation['id']}")["amount_paid"] == 0


def test_cancelling_late_keeps_the_late_fee(app, lot, payer):
    reservation = _reserve(payer, lot, start=20)
    canceled = payer.api.post(f"{R}/{reservation['id']}/cancel", expected=200)
    assert (canceled["fee_amount"], canceled["amount_paid"]) == (3000, 3000)
    with app.app_context():
        assert payments.balance("parking_reservation", reservation["id"]) == {"KRW": 3000}


def test_a_payment_that_arrives_for_an_expired_hold_is_refunded(app, lot, payer):
    reservation = _reserve(payer, lot)
    with app.app_context():
        row = db.session.get(Reservation, reservation["id"])
        assert row is not None
        row.status, row.payment_id = "expired", None
        db.session.commit()
        payment = payments.charge(
            payer.user.id,
            6000,
            "KRW",
            "parking_reservation",
            reservation["id"],
            idempotency_key=f"reservation-{reservation['id']}-attempt-9",
        )
        assert payments.balance("parking_reservation", reservation["id"]) == {"KRW": 6000}
        assert payments.get_payment(payment.id).amount_refunded == 6000


def test_citizens_see_only_their_own_reservations_and_operators_those_of_their_lots(
    lot, payer, make_account, make_operator, citizen
):
    reservation = _reserve(payer, lot)
    other = make_account("citizen")
    other.api.get(f"{R}/{reservation['id']}", expected=404)
    other.api.post(f"{R}/{reservation['id']}/cancel", expected=404)
    assert [r["id"] for r in payer.api.get(R)] == [reservation["id"]]
    assert [r["id"] for r in lot.operator.api.get(f"{P}/lots/{lot.id}/reservations")] == [
        reservation["id"]
    ]
    make_operator().api.get(f"{P}/lots/{lot.id}/reservations", expected=404)


def test_a_replayed_reservation_request_returns_the_first_answer(lot, payer):
    body = {
        "space_id": lot.space(0),
        "starts_at": in_minutes(30),
        "ends_at": in_minutes(90),
        "vehicle_plate": "12가3456",
    }
    first = payer.api.request("POST", R, 201, json=body, headers={"Idempotency-Key": "r-1"})
    again = payer.api.request("POST", R, 201, json=body, headers={"Idempotency-Key": "r-1"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]


def test_a_payment_needing_3d_secure_answers_202_with_the_client_secret_and_its_outcome_confirms_it(
    app, lot, citizen, card_needing_3ds, stripe_server
):
    held = _reserve(citizen, lot, expected=202, payment_method=card_needing_3ds())
    assert (held["status"], held["payment"]["status"]) == ("held", "requires_action")
    secret = held["payment"]["client_secret"]
    assert secret.startswith("pi_") and "_secret_" in secret
    with app.app_context():
        payment = payments.get_payment(held["payment"]["id"])
        outcome = PaymentOutcome(
            payment_id=payment.id,
            user_id=citizen.user.id,
            purpose="parking_reservation",
            reference=held["id"],
            amount=payment.amount,
            currency=payment.currency,
            status="succeeded",
        )
        reservations.on_payment_succeeded(outcome)
        reservations.on_payment_succeeded(outcome)  # delivered twice: still one confirmation
    confirmed = citizen.api.get(f"{R}/{held['id']}")
    assert (confirmed["status"], confirmed["amount_paid"]) == ("confirmed", payment.amount)


def test_lot_stats_count_reservations_the_no_show_rate_and_revenue(app, lot, citizen):
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    rows = [
        ("completed", 6000, 2000),
        ("no_show", 3000, 0),
        ("completed", 6000, 0),
        ("canceled", 0, 0),
    ]
    with app.app_context():
        for n, (status, paid, overstay) in enumerate(rows):
            db.session.add(
                Reservation(
                    user_id=citizen.user.id,
                    lot_id=lot.id,
                    space_id=lot.space(n % 3),
                    starts_at=now - timedelta(hours=5 - n),
                    ends_at=now - timedelta(hours=4 - n),
                    vehicle_plate="X1",
                    status=status,
                    quote_amount=6000,
                    currency="KRW",
                    payment_attempts=1,
                    amount_paid=paid,
                    overstay_paid=overstay,
                )
            )
        db.session.commit()
    stats = lot.operator.api.get(
        f"{P}/lots/{lot.id}/stats",
        query_string={"from": (now - timedelta(hours=6)).isoformat(), "to": now.isoformat()},
    )
    assert stats["reservations"] == 4
    assert stats["by_status"] == {"completed": 2, "no_show": 1, "canceled": 1}
    assert stats["no_show_rate"] == round(1 / 3, 4)
    assert stats["revenue"] == 6000 + 2000 + 3000 + 6000


def test_another_citizens_saved_card_is_refused_and_the_hold_released(
    app, lot, payer, make_account
):
    with app.app_context():
        method = db.session.scalar(
            select(SavedCard.stripe_payment_method_id).where(SavedCard.user_id == payer.user.id)
        )
    other = make_account("citizen")
    other.api.post(METHODS, {"payment_method": "pm_card_visa", **CONSENT}, expected=201)
    refused = _reserve(other, lot, payment_method=method, expected=422)
    assert "payment_method" in refused["errors"]["json"]
    assert other.api.get("/api/v1/payments") == [] and payer.api.get("/api/v1/payments") == []
    _reserve(payer, lot)  # the space was not left held
