"""Writing and reading the audit trail."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from core import db
from core.audit.models import AuditEntry
from core.auth.principal import Principal
from core.logs import current_request_id


def record(
    actor: Principal | None,
    action: str,
    object_type: str,
    object_id: str,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add an audit row to the caller's transaction (it commits with the change it describes).

    ``actor`` is the authenticated caller, or None for the command line (an operator at a shell).
    """
    entry = AuditEntry(
        actor=actor.actor if actor else "cli",
        actor_role=actor.role if actor else "operator",
        action=action,
        object_type=object_type,
        object_id=object_id,
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
        request_id=current_request_id(),
    )
    db.session.add(entry)
    return entry


def search(
    *,
    actor: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[tuple[AuditEntry]]:
    """A query of audit rows, newest first, filtered by actor, object and time."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if object_type:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id:
        query = query.where(AuditEntry.object_id == object_id)
    if since:
        query = query.where(AuditEntry.at >= since)
    if until:
        query = query.where(AuditEntry.at < until)
    return query
