"""Outcomes are delivered at least once, after the commit, and a receiver's failure never fails
the payment or refund request (nor releases its Idempotency-Key)."""

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from core import db, outbox
from core.clock import utcnow
from core.outbox import OutboxMessage
from payments import service, signals
from payments.service import charges


@pytest.fixture
def receiver(app) -> Iterator[Callable[..., list[signals.PaymentOutcome]]]:
    """``receiver(outcome, fails=n)``: a subscriber that raises on its first ``n`` deliveries;
    returns the list of what it was handed."""
    names: list[str] = []

    def add(outcome: str, fails: int = 0) -> list[signals.PaymentOutcome]:
        heard: list[signals.PaymentOutcome] = []

        def handle(result: signals.PaymentOutcome) -> None:
            heard.append(result)
            if len(heard) <= fails:
                raise RuntimeError("a receiver's bug")

        name = f"test.receiver.{len(names)}"
        signals.subscribe(app, outcome, name, handle)
        names.append(name)
        return heard

    yield add
    for name in names:
        app.extensions["outbox"].pop(name)


@pytest.fixture
def paid(app, citizen, save_card):
    save_card(citizen)
    with app.app_context():
        return service.charge(
            citizen.user.id, 5000, "KRW", "parking", "res-1", idempotency_key="res-1-attempt-1"
        )


def _stripe_refunds(stripe_server, intent_id):
    return [r for r in stripe_server.list("refunds") if r["payment_intent"] == intent_id]


def test_a_refund_whose_receiver_raises_is_201_and_a_retry_with_its_key_refunds_once(
    app, admin, paid, stripe_server, receiver
):
    heard = receiver(signals.REFUND_SUCCEEDED, fails=1)
    url = f"/api/v1/payments/{paid.id}/refunds"
    headers = {"Idempotency-Key": "refund-after-a-receiver-bug"}
    body = {"amount": 1000, "reason": "left early"}
    first = admin.api.request("POST", url, 201, json=body, headers=headers)
    again = admin.api.request("POST", url, 201, json=body, headers=headers)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"  # the key was kept, not released
    at_stripe = _stripe_refunds(stripe_server, paid.stripe_payment_intent_id)
    assert [int(r["amount"]) for r in at_stripe] == [1000]
    assert admin.api.get(f"/api/v1/payments/{paid.id}")["amount_refunded"] == 1000
    assert len(heard) == 1  # tried once, failed; the outbox keeps it for later
    with app.app_context(), time_machine.travel(utcnow() + timedelta(minutes=1)):
        assert outbox.sweep() == 1
    assert [o.refunded_amount for o in heard] == [1000, 1000]


def test_an_outcome_whose_receiver_failed_during_the_sweep_is_delivered_again_later(
    app, citizen, save_card, monkeypatch, receiver
):
    save_card(citizen)
    heard = receiver(signals.PAYMENT_SUCCEEDED, fails=1)

    def crash(*_a, **_kw):
        raise SystemExit("killed between Stripe and our commit")

    monkeypatch.setattr(charges, "settle_intent", crash)
    with app.app_context(), pytest.raises(SystemExit):
        service.charge(citizen.user.id, 5000, "KRW", "parking", "res-2", idempotency_key="res-2")
    monkeypatch.undo()
    sweep_at = utcnow() + timedelta(minutes=6)
    with app.app_context():
        with time_machine.travel(sweep_at):
            assert service.reconcile() == 1  # succeeded; the receiver raised: not delivered
        assert len(heard) == 1
        (message,) = db.session.scalars(select(OutboxMessage)).all()
        assert (message.delivered_at, message.attempts) == (None, 1)
        assert "a receiver's bug" in (message.last_error or "")
        with time_machine.travel(sweep_at + timedelta(seconds=10)):
            assert outbox.sweep() == 0  # backing off
        with time_machine.travel(sweep_at + timedelta(minutes=1)):
            assert outbox.sweep() == 1
            assert outbox.sweep() == 0  # delivered once more, and only once
    assert [o.reference for o in heard] == ["res-2", "res-2"]
    with app.app_context():
        assert service.get_payment(heard[0].payment_id).status == "succeeded"
