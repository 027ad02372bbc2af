"""The transactional outbox: outcomes announced between modules, delivered at least once.

A module that announces an outcome (payments: ``payment_succeeded``...) calls :func:`publish`
inside the transaction that changes its own rows, so the announcement commits or rolls back
with the change it describes. ``publish`` writes one row per subscriber of the topic; after the
commit, :func:`deliver_ready` hands each row to its subscriber, and the ``core.outbox.deliver``
sweep hands over again whatever is still undelivered, with an exponential backoff and one log
line per failure.

Subscribers register in their module's ``register()`` with :func:`subscribe`. A subscriber:

- receives the payload (a JSON object) and may read and write through ``db.session`` and call
  services; its writes and the row's ``delivered_at`` commit together when it does not commit
  itself;
- **must be idempotent**: a crash between its own commit and the delivery mark, or a retry
  after a failure, delivers the same message again;
- never fails the publisher: an exception is logged, rolled back and retried later.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import JSON, Index, Integer, String, Text, event, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core import db
from core.clock import utcnow
from core.db import Base, UTCDateTime
from core.ids import new_id

log = logging.getLogger("civic.outbox")

Handler = Callable[[dict[str, Any]], None]
Filter = Callable[[dict[str, Any]], bool]

# The publisher delivers at once; the sweep only takes a fresh row after this grace period.
FIRST_RETRY = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
_PENDING = "outbox_pending"  # ids published in the session's open transaction
_READY = "outbox_ready"  # ids whose transaction has committed, not yet handed over
_DELIVERING = "outbox_delivering"


class OutboxMessage(Base):
    """One announcement for one subscriber; ``delivered_at`` is set once it has been handled."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    topic: Mapped[str] = mapped_column(String(100))
    subscriber: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class Subscription:
    topic: str
    name: str
    handler: Handler
    when: Filter | None = None


def subscribe(
    app: Flask, topic: str, name: str, handler: Handler, when: Filter | None = None
) -> None:
    """Deliver every later ``topic`` message (for which ``when(payload)`` holds) to ``handler``.

    ``name`` identifies the subscriber in the stored rows (``"civic.application_paid"``); it
    must stay stable while undelivered rows may name it.
    """
    subscriptions: dict[str, Subscription] = app.extensions.setdefault("outbox", {})
    if name in subscriptions:
        raise ValueError(f"outbox subscriber {name!r} is registered twice")
    subscriptions[name] = Subscription(topic, name, handler, when)


def _subscriptions() -> dict[str, Subscription]:
    return current_app.extensions.get("outbox", {})


def publish(topic: str, payload: dict[str, Any]) -> int:
    """Announce ``payload`` on ``topic`` in the caller's transaction; returns the rows written.

    Nothing is delivered unless and until that transaction commits.
    """
    now = utcnow()
    written = 0
    for subscription in _subscriptions().values():
        if subscription.topic != topic or (subscription.when and not subscription.when(payload)):
            continue
        message = OutboxMessage(
            id=new_id(),
            topic=topic,
            subscriber=subscription.name,
            payload=payload,
            created_at=now,
            next_attempt_at=now + FIRST_RETRY,
        )
        db.session.add(message)
        db.session.info.setdefault(_PENDING, []).append(message.id)
        written += 1
    return written


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.info.setdefault(_READY, []).extend(pending)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


def deliver_ready() -> int:
    """Hand over the messages this session has committed; returns how many were delivered.

    Publishers call it after their commit; the app context's teardown calls it too, so a
    message is never left waiting for the sweep when its publisher forgot.
    """
    info = db.session.info
    if info.get(_DELIVERING):
        return 0  # a subscriber published in turn: the outer loop takes those too
    info[_DELIVERING] = True
    delivered = 0
    try:
        while info.get(_READY):
            delivered += deliver(info[_READY].pop(0))
    finally:
        info[_DELIVERING] = False
    return delivered


def deliver(message_id: str) -> int:
    """Deliver one message if it is still undelivered (1), else nothing (0).

    A subscriber's failure is logged and scheduled for a retry, never raised.
    """
    db.end_read_transaction()  # the lock below is taken in a transaction of its own
    query = select(OutboxMessage).where(
        OutboxMessage.id == message_id, OutboxMessage.delivered_at.is_(None)
    )
    if db.is_postgresql():
        query = query.with_for_update(skip_locked=True)
    message = db.session.scalars(query).one_or_none()
    if message is None:  # delivered already, or another process holds it right now
        db.session.commit()
        return 0
    subscription = _subscriptions().get(message.subscriber)
    try:
        if subscription is None:
            raise LookupError(f"no subscriber {message.subscriber!r} in this process")
        subscription.handler(dict(message.payload))
        message = _reload(message_id)
        message.attempts += 1
        message.delivered_at = utcnow()
        db.session.commit()
    except Exception as error:
        db.session.rollback()
        _record_failure(message_id, error)
        return 0
    return 1


def _reload(message_id: str) -> OutboxMessage:
    """The row again (a subscriber may have committed or rolled back in between)."""
    message = db.session.get(OutboxMessage, message_id)
    assert message is not None
    return message


def _record_failure(message_id: str, error: Exception) -> None:
    message = _reload(message_id)
    message.attempts += 1
    delay = min(FIRST_RETRY * 2 ** (message.attempts - 1), MAX_BACKOFF)
    message.next_attempt_at = utcnow() + delay
    message.last_error = f"{type(error).__name__}: {error}"[:2000]
    db.session.commit()
    log.error(
        "outbox delivery failed",
        exc_info=error,
        extra={
            "outbox_message": message.id,
            "topic": message.topic,
            "subscriber": message.subscriber,
            "attempts": message.attempts,
            "retry_in_s": int(delay.total_seconds()),
        },
    )


def sweep(batch: int = 500) -> int:
    """Deliver what is due and still undelivered (the ``core.outbox.deliver`` job)."""
    due = db.session.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.next_attempt_at <= utcnow())
        .order_by(OutboxMessage.next_attempt_at)
        .limit(batch)
    ).all()
    db.session.commit()
    return sum(deliver(message_id) for message_id in due)


def undelivered_count() -> int:
    """How many messages wait for delivery (``/metrics``)."""
    query = select(func.count()).where(OutboxMessage.delivered_at.is_(None))
    return int(db.session.scalar(query) or 0)


def init_app(app: Flask) -> None:
    """Deliver, when the app context ends, what a publisher left committed but undelivered."""

    @app.teardown_appcontext
    def _deliver_left_over(_exc: BaseException | None) -> None:
        # No session this request (most reads): do not create one just to look.
        if not has_app_context() or not db.session.registry.has():
            return
        if not db.session.info.get(_READY):
            return
        try:
            db.session.rollback()  # whatever a failed request left is not ours to commit
            deliver_ready()
        except Exception:  # never let delivery break the end of a request
            log.exception("outbox delivery at teardown failed; the sweep will retry")
