"""Reserving and paying in one tap; the rules; no double booking, ever; the sensor-driven
lifecycle (arrival, departure, overstay, no-show, a space taken by someone else); cancelling."""

import threading
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from core import db
from core.clock import utcnow
from core.inbox.models import Notification
from parking.models import Reservation
from parking.service import reservations
from payments import service as payments
from tests.conftest import count_rows
from tests.parking.conftest import P, in_minutes
from tests.payments.conftest import CONSENT, METHODS

R = f"{P}/reservations"


@pytest.fixture(autouse=True)
def _stripe(stripe_server):
    return stripe_server


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
    body = {"lot_id": lot.id, "starts_at": in_minutes(5), "ends_at": in_minutes(65),
            "vehicle_plate": "12가3456"}
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
