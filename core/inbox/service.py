"""Sending and reading inbox messages."""

from typing import Any

from sqlalchemy import Select, select, update

from core import db
from core.auth.models import User
from core.clock import utcnow
from core.errors import NotFound
from core.i18n import _l, default_locale, render
from core.inbox.models import Notification


def notify(
    user_id: str,
    kind: str,
    title: Any,
    body: Any,
    params: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> Notification:
    """Put a message in the user's inbox, inside the caller's transaction (commits with it).

    ``title`` and ``body`` are message ids (``_l("...")``), rendered now in the recipient's
    locale (not the caller's: a sweep has no request) with ``params`` (``Money``, datetimes...).
    """
    locale = recipient_locale(user_id)
    notification = Notification(
        user_id=user_id,
        kind=kind,
        title=render(title, locale, params),
        body=render(body, locale, params),
        data=data,
    )
    db.session.add(notification)
    return notification


def recipient_locale(user_id: str) -> str:
    """The locale the user chose, else the city's default."""
    chosen = db.session.scalar(select(User.locale).where(User.id == user_id))
    return chosen or default_locale()


def inbox_query(user_id: str, *, unread_only: bool = False) -> Select[tuple[Notification]]:
    """The user's messages: unread first, then newest first."""
    query = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    unread_first = Notification.read_at.is_not(None)
    return query.order_by(unread_first, Notification.created_at.desc(), Notification.id)


def mark_read(user_id: str, notification_id: str) -> Notification:
    """Mark one of the user's own messages read; another user's message is 404, not 403."""
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != user_id:
        raise NotFound(_l("No such notification."))
    if notification.read_at is None:
        notification.read_at = utcnow()
        db.session.commit()
    return notification


def mark_all_read(user_id: str) -> int:
    """Mark every unread message of the user read; returns how many."""
    result = db.session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    db.session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
