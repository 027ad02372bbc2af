"""Transaction boundaries: payments never commits or discards a caller's work, and holds no
transaction while Stripe answers (on SQLite that would hold every other writer)."""

import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select

from core import db
from core.clock import utcnow
from core.inbox.models import Notification
from payments import service
from payments.models import Payment

STRIPE_STALL_S = 2.0


def _note(user_id: str) -> Notification:
    return Notification(user_id=user_id, kind="caller", title="mine", body="my own row")


def _notes() -> int:
    return int(db.session.scalar(select(func.count()).select_from(Notification)) or 0)


def _paid(app, citizen, key="bill-1-attempt-1") -> Payment:
    with app.app_context():
        return service.charge(
            citizen.user.id, 5000, "KRW", "hospital_bill", "bill-1", idempotency_key=key
        )


CALLS: dict[str, Callable[[Any, Payment, str], object]] = {
    "charge": lambda account, paid, card: service.charge(
        account.user.id, 5000, "KRW", "hospital_bill", "bill-1", idempotency_key="bill-1-attempt-1"
    ),
    "refund": lambda account, paid, card: service.refund(paid.id, 1000, "caller test"),
    "save_card": lambda account, paid, card: service.save_card(
        account.user.id, "pm_card_visa", "2026-11"
    ),
    "remove_card": lambda account, paid, card: service.remove_card(account.user.id, card),
    "ensure_customer": lambda account, paid, card: service.ensure_customer(account.user.id),
}


@pytest.mark.parametrize("flushed", [False, True], ids=["added", "flushed"])
@pytest.mark.parametrize("call", CALLS)
def test_a_caller_with_uncommitted_writes_is_refused_and_its_writes_stay_in_its_session(
    app, citizen, save_card, call, flushed
):
    card = save_card(citizen)["id"]
    paid = _paid(app, citizen)
    with app.app_context():
        mine = _note(citizen.user.id)
        db.session.add(mine)
        if flushed:
            db.session.flush()
        with pytest.raises(RuntimeError, match="uncommitted changes"):
            CALLS[call](citizen, paid, card)
        assert mine in db.session.new or (flushed and mine in db.session)
        db.session.commit()  # the caller decides, and its row is there
        assert _notes() == 1


def test_a_callers_committed_row_survives_charge_hitting_its_idempotency_conflict(
    app, citizen, save_card
):
    save_card(citizen)
    _paid(app, citizen, key="bill-1-attempt-1")
    with app.app_context():
        mine = _note(citizen.user.id)
        db.session.add(mine)
        db.session.commit()
        again = service.charge(
            citizen.user.id,
            5000,
            "KRW",
            "hospital_bill",
            "bill-1",
            idempotency_key="bill-1-attempt-1",
        )
        assert again.status == "succeeded"
        assert not db.session().in_transaction()  # payments returns with no transaction open
        assert mine.title == "mine"  # still usable after payments' own rollback
    with app.app_context():
        assert _notes() == 1
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 1


def test_a_refused_charge_leaves_the_callers_committed_rows_and_no_transaction_open(app, citizen):
    with app.app_context():
        db.session.add(_note(citizen.user.id))
        db.session.commit()
        with pytest.raises(Exception, match="No saved card"):
            service.charge(citizen.user.id, 5000, "KRW", "t", "r", idempotency_key="k")
        assert not db.session().in_transaction()
        assert _notes() == 1


# --- no transaction across a Stripe call: a registration is not held up ----------------------


def _stall(app, monkeypatch, method: str) -> threading.Event:
    """Make one gateway call take STRIPE_STALL_S; the event is set when it starts."""
    with app.app_context():
        gateway = service.gateway()
    real = getattr(gateway, method)
    started = threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        time.sleep(STRIPE_STALL_S)
        return real(*args, **kwargs)

    monkeypatch.setattr(gateway, method, slow)
    return started


def _register_while(app, client, started: threading.Event, work: Callable[[], object]) -> float:
    """Run ``work`` in a thread; once its Stripe call is in flight, register a citizen.
    Returns how long the registration took."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with app.app_context():
                work()
        except BaseException as error:  # collected: a thread's failure must fail the test
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(10), "the Stripe call never started"
    began = time.monotonic()
    client.post(
        "/api/v1/auth/register",
        {
            "email": f"new-{uuid.uuid4().hex[:8]}@example.test",
            "password": "Vq8#mT2!zR6@pL4x",
            "name": "New citizen",
        },
        expected=201,
    )
    took = time.monotonic() - began
    thread.join(30)
    assert errors == []
    return took


@pytest.mark.parametrize(
    ("flow", "method"),
    [
        ("charge", "create_payment_intent"),
        ("refund", "create_refund"),
        ("save_card", "create_setup_intent"),
    ],
)
def test_a_registration_is_not_held_up_by_a_slow_stripe_call(
    app, client, citizen, save_card, monkeypatch, flow, method
):
    save_card(citizen)
    paid = _paid(app, citizen, key="bill-0-attempt-1")
    started = _stall(app, monkeypatch, method)
    work = {
        "charge": lambda: service.charge(
            citizen.user.id, 5000, "KRW", "hospital_bill", "bill-2", idempotency_key="bill-2"
        ),
        "refund": lambda: service.refund(paid.id, 1000, "slow stripe"),
        "save_card": lambda: service.save_card(citizen.user.id, "pm_card_visa", "2026-11"),
    }[flow]
    took = _register_while(app, client, started, work)
    assert took < STRIPE_STALL_S / 2, f"registration waited {took:.2f} s for Stripe"


def test_a_registration_is_not_held_up_by_a_slow_stripe_call_in_the_sweep(
    app, client, citizen, save_card, monkeypatch, stripe_outage
):
    save_card(citizen)
    stripe_outage("create_payment_intent")
    _paid(app, citizen)  # left pending
    monkeypatch.undo()
    started = _stall(app, monkeypatch, "find_payment_intent_by_metadata")
    later = utcnow() + timedelta(minutes=6)

    def sweep() -> None:
        with time_machine.travel(later):
            service.reconcile()

    took = _register_while(app, client, started, sweep)
    assert took < STRIPE_STALL_S / 2, f"registration waited {took:.2f} s for Stripe"
