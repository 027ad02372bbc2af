"""The database refuses what the service never writes: money beyond a currency's ceiling,
more refunded than paid, an unknown ledger kind. Money columns hold 64-bit integers."""

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import BigInteger, insert, inspect, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from core import db
from core.errors import InvalidInput
from core.ids import new_id
from core.money import SUPPORTED
from payments import service
from payments.models import (
    AMOUNT_CEILINGS,
    STRIPE_MAX_AMOUNT,
    LedgerEntry,
    Payment,
)
from tests.conftest import build_app


@pytest.fixture
def connection(app, citizen) -> Iterator[Connection]:
    """A connection in a transaction that is rolled back after the test."""
    with app.app_context(), db.engine().connect() as conn:
        transaction = conn.begin()
        yield conn
        transaction.rollback()


def _payment(citizen_id: str, amount: int, currency: str = "KRW", **extra) -> dict:
    return {
        "id": new_id(),
        "user_id": citizen_id,
        "amount": amount,
        "currency": currency,
        "purpose": "t",
        "reference": "r",
        "idempotency_key": new_id(),
        "status": "succeeded",
        "off_session": False,
        "amount_refunded": 0,
        **extra,
    }


def _refused(connection: Connection, statement) -> bool:
    savepoint = connection.begin_nested()
    try:
        connection.execute(statement)
    except IntegrityError:
        savepoint.rollback()
        return True
    savepoint.commit()
    return False


def test_money_columns_are_64_bit_integers(app):
    with app.app_context():
        columns = {
            table: {c["name"]: c["type"] for c in inspect(db.engine()).get_columns(table)}
            for table in ("payments", "payment_refunds", "payment_ledger")
        }
    money = [
        columns["payments"]["amount"],
        columns["payments"]["amount_refunded"],
        columns["payment_refunds"]["amount"],
        columns["payment_ledger"]["amount"],
    ]
    assert all(isinstance(kind, BigInteger) for kind in money), money


def test_a_ledger_sum_beyond_32_bits_is_stored(connection, citizen):
    payment = _payment(citizen.user.id, 5000)
    connection.execute(insert(Payment).values(payment))
    entry = {
        "id": new_id(),
        "kind": "charge",
        "source_id": new_id(),
        "payment_id": payment["id"],
        "purpose": "t",
        "reference": "r",
        "currency": "KRW",
        "amount": 3 * 2**32,
    }
    assert not _refused(connection, insert(LedgerEntry).values(entry))


def test_each_currency_is_bounded_by_its_ceiling(connection, citizen):
    for currency in sorted(SUPPORTED):
        ceiling = AMOUNT_CEILINGS[currency]
        at, over = (_payment(citizen.user.id, a, currency) for a in (ceiling, ceiling + 1))
        assert not _refused(connection, insert(Payment).values(at)), currency
        assert _refused(connection, insert(Payment).values(over)), currency


def test_a_currency_we_do_not_take_is_refused(connection, citizen):
    assert _refused(connection, insert(Payment).values(_payment(citizen.user.id, 100, "XXX")))


def test_more_refunded_than_paid_or_a_negative_refund_total_is_refused(connection, citizen):
    payment = _payment(citizen.user.id, 5000)
    connection.execute(insert(Payment).values(payment))
    where = Payment.id == payment["id"]
    assert not _refused(connection, update(Payment).where(where).values(amount_refunded=5000))
    assert _refused(connection, update(Payment).where(where).values(amount_refunded=5001))
    assert _refused(connection, update(Payment).where(where).values(amount_refunded=-1))


LEDGER_CASES = [
    ("charge", 5000, False),
    ("refund", -5000, False),
    ("refund_reversal", 5000, False),
    ("bonus", 5000, True),
    ("charge", -5000, True),
    ("refund", 5000, True),
    ("refund_reversal", -5000, True),
]


def test_the_ledger_takes_only_its_kinds_with_their_sign(connection, citizen):
    payment = _payment(citizen.user.id, 5000)
    connection.execute(insert(Payment).values(payment))
    for kind, amount, refused in LEDGER_CASES:
        entry = {
            "id": new_id(),
            "kind": kind,
            "source_id": new_id(),
            "payment_id": payment["id"],
            "purpose": "t",
            "reference": "r",
            "currency": "KRW",
            "amount": amount,
        }
        assert _refused(connection, insert(LedgerEntry).values(entry)) is refused, (kind, amount)


# --- the settings agree with the database ---------------------------------------------------


def test_a_per_currency_maximum_is_taken_over_the_default(app, citizen, save_card):
    save_card(citizen)
    app.config["PAYMENT_MAX_AMOUNTS"] = {"KRW": 10_000}
    try:
        with app.app_context():
            assert service.max_amount("KRW") == 10_000
            assert service.max_amount("USD") == app.config["PAYMENT_MAX_AMOUNT"]
            with pytest.raises(InvalidInput, match="maximum") as error:
                service.charge(citizen.user.id, 10_001, "KRW", "t", "r", idempotency_key="k")
            assert error.value.field == "amount"
            assert (
                service.charge(citizen.user.id, 10_000, "KRW", "t", "r", idempotency_key="k").status
                == "succeeded"
            )
    finally:
        app.config["PAYMENT_MAX_AMOUNTS"] = {}


@pytest.mark.parametrize(
    "settings",
    [
        {"PAYMENT_MAX_AMOUNT": STRIPE_MAX_AMOUNT + 1},
        {"PAYMENT_MAX_AMOUNTS": {"USD": STRIPE_MAX_AMOUNT + 1}},
        {"PAYMENT_MAX_AMOUNTS": {"XYZ": 100}},
        {"PAYMENT_MAX_AMOUNT": 0},
    ],
)
def test_the_app_refuses_to_start_with_a_maximum_the_database_would_refuse(tmp_path, settings):
    with pytest.raises(RuntimeError, match="PAYMENT_MAX_AMOUNT"):
        build_app("sqlite://", tmp_path, **settings)


def test_a_per_currency_maximum_is_read_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PAYMENT_MAX_AMOUNT_USD", "100000")
    app: Flask = build_app("sqlite://", tmp_path)
    assert app.config["PAYMENT_MAX_AMOUNTS"] == {"USD": 100_000}
