"""civic's sweeps: find the due applications (set-based), then hand each to a service function
that locks it, checks it again, changes it and commits (one row per transaction). Safe to run
twice, and on PostgreSQL two sweepers skip each other's rows."""

from typing import Any

from sqlalchemy import select

from civic.models import Application
from civic.service import workflow
from civic.service.applications import OPEN_STATUSES
from core import db
from core.clock import utcnow

BATCH = 200


def flag_overdue() -> int:
    """``civic.flag_overdue``: applications past their deadline, flagged and their department's
    officials told, once; returns how many."""
    due = (
        Application.status.in_(OPEN_STATUSES)
        & (Application.deadline_at < utcnow())
        & Application.overdue_flagged_at.is_(None)
    )
    return sum(workflow.flag_overdue(application_id) for application_id in _due(due))


def expire_unpaid() -> int:
    """``civic.expire_unpaid``: applications whose fee was not paid in time; returns how many."""
    due = (
        (Application.status == "awaiting_payment")
        & (Application.expires_at < utcnow())
        & (Application.payment_status != "in_progress")
    )
    return sum(workflow.expire_unpaid(application_id) for application_id in _due(due))


def _due(condition: Any) -> list[str]:
    ids = list(db.session.scalars(select(Application.id).where(condition).limit(BATCH)))
    db.session.commit()  # end the read: each row gets its own transaction
    return ids
