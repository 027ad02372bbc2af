"""The outbox: an announcement commits with its change and reaches every subscriber at least
once, whatever a subscriber does."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import select

from core import db, outbox
from core.clock import utcnow
from core.outbox import OutboxMessage

Subscribe = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def subscribe(app) -> Iterator[Subscribe]:
    """``subscribe("topic", "name", fail=n)``: a subscriber that records what it gets and raises
    for its first ``n`` deliveries; removed after the test."""
    names: list[str] = []

    def add(topic: str, name: str, *, fail: int = 0, when: Any = None) -> list[dict[str, Any]]:
        heard: list[dict[str, Any]] = []
        failures = [fail]

        def handler(payload: dict[str, Any]) -> None:
            if failures[0] > 0:
                failures[0] -= 1
                raise RuntimeError("receiver is down")
            heard.append(payload)

        outbox.subscribe(app, topic, name, handler, when)
        names.append(name)
        return heard

    yield add
    for name in names:
        app.extensions["outbox"].pop(name)


def _messages() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.subscriber)))


def test_an_announcement_rolled_back_with_its_change_is_never_delivered(app, subscribe):
    heard = subscribe("test.done", "test.a")
    with app.app_context():
        outbox.publish("test.done", {"n": 1})
        db.session.rollback()
        assert outbox.deliver_ready() == 0
        assert _messages() == []
    assert heard == []


def test_a_committed_announcement_is_delivered_once_to_each_subscriber(app, subscribe):
    first, second = subscribe("test.done", "test.a"), subscribe("test.done", "test.b")
    other = subscribe("test.other", "test.c")
    with app.app_context():
        assert outbox.publish("test.done", {"n": 1}) == 2
        db.session.commit()
        assert outbox.deliver_ready() == 2
        assert outbox.deliver_ready() == 0
        assert outbox.sweep() == 0
        assert all(m.delivered_at is not None for m in _messages())
    assert first == second == [{"n": 1}]
    assert other == []


def test_a_filter_keeps_messages_a_subscriber_does_not_want_from_being_written(app, subscribe):
    heard = subscribe("test.done", "test.a", when=lambda p: p["purpose"] == "parking")
    with app.app_context():
        assert outbox.publish("test.done", {"purpose": "health"}) == 0
        assert outbox.publish("test.done", {"purpose": "parking"}) == 1
        db.session.commit()
        outbox.deliver_ready()
    assert heard == [{"purpose": "parking"}]


def test_a_failing_subscriber_never_fails_the_publisher_and_is_retried_with_backoff(
    app, subscribe, caplog
):
    healthy, flaky = subscribe("test.done", "test.a"), subscribe("test.done", "test.b", fail=2)
    with app.app_context():
        outbox.publish("test.done", {"n": 1})
        db.session.commit()
        with caplog.at_level("ERROR", logger="civic.outbox"):
            assert outbox.deliver_ready() == 1  # the healthy one; the flaky one is kept
        failed = [r for r in caplog.records if r.getMessage() == "outbox delivery failed"]
        assert len(failed) == 1 and failed[0].subscriber == "test.b" and failed[0].attempts == 1
        (message,) = [m for m in _messages() if m.subscriber == "test.b"]
        first_retry = message.next_attempt_at - utcnow()
        assert timedelta(seconds=25) < first_retry <= timedelta(seconds=30)
        assert message.last_error == "RuntimeError: receiver is down"
        assert outbox.sweep() == 0  # not due yet

        with time_machine.travel(utcnow() + timedelta(seconds=31), tick=False):
            assert outbox.sweep() == 0  # fails again: now 60 s away
            again = db.session.get(OutboxMessage, message.id)
            assert again is not None and again.attempts == 2
            assert again.next_attempt_at - utcnow() == timedelta(seconds=60)
        with time_machine.travel(utcnow() + timedelta(seconds=92), tick=False):
            assert outbox.sweep() == 1
            assert outbox.sweep() == 0
    assert healthy == flaky == [{"n": 1}]


def test_what_a_publisher_left_undelivered_is_delivered_when_its_app_context_ends(app, subscribe):
    heard = subscribe("test.done", "test.a")
    with app.app_context():
        outbox.publish("test.done", {"n": 1})
        db.session.commit()
        assert heard == []
    assert heard == [{"n": 1}]


def test_a_subscriber_that_publishes_in_turn_has_its_message_delivered_too(app, subscribe):
    heard = subscribe("test.second", "test.b")

    def relay(payload: dict[str, Any]) -> None:
        outbox.publish("test.second", {"from": payload["n"]})

    outbox.subscribe(app, "test.first", "test.relay", relay)
    try:
        with app.app_context():
            outbox.publish("test.first", {"n": 7})
            db.session.commit()
            assert outbox.deliver_ready() == 2
    finally:
        app.extensions["outbox"].pop("test.relay")
    assert heard == [{"from": 7}]


def test_delivery_refuses_to_commit_a_callers_unfinished_work(app, subscribe):
    subscribe("test.done", "test.a")
    with app.app_context():
        outbox.publish("test.done", {"n": 1})
        db.session.commit()
        db.session.add(
            OutboxMessage(topic="x", subscriber="y", payload={}, next_attempt_at=utcnow())
        )
        with pytest.raises(RuntimeError, match="commit them"):
            outbox.deliver_ready()
        db.session.rollback()
