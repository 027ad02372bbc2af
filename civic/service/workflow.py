"""Applications, the officials' side: the department's queue, claiming, asking for
information, approving (which issues the certificate) and rejecting; and what the sweeps do to
one application (flag it overdue, expire it unpaid).

An official sees only the applications of their own department: any other is a 404.
"""

from typing import Any

from sqlalchemy import func, select

from civic.models import Application
from civic.service import applications, certificates, timeline
from civic.service.applications import OPEN_STATUSES
from core import db
from core.audit import service as audit
from core.auth.models import User
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import Conflict
from core.i18n import _l


def queue(
    principal: Principal,
    status: str | None,
    overdue: bool | None,
    lang: str,
    page: int,
    page_size: int,
) -> tuple[list[dict[str, Any]], int]:
    """The department's applications, oldest first; by default the ones still to decide."""
    query = select(Application).where(Application.department_code == principal.department)
    if status:
        query = query.where(Application.status == status)
    else:
        query = query.where(Application.status.in_(OPEN_STATUSES))
    now = utcnow()
    is_overdue = Application.status.in_(OPEN_STATUSES) & (Application.deadline_at < now)
    if overdue is True:
        query = query.where(is_overdue)
    elif overdue is False:
        query = query.where(~is_overdue | Application.deadline_at.is_(None))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(
        query.order_by(Application.submitted_at, Application.created_at, Application.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return [applications.summary(a, lang) for a in rows], int(total)


def claim(principal: Principal, application_id: str) -> Application:
    """Take a submitted application up for review."""
    return _move(principal, application_id, ("submitted",), "in_review", None, "claimed")


def request_info(principal: Principal, application_id: str, note: str) -> Application:
    """Ask the applicant for more information (they answer, and it comes back for review)."""
    return _move(principal, application_id, ("in_review",), "needs_info", note, "info_requested")


def approve(principal: Principal, application_id: str, note: str | None) -> Application:
    """Approve: the decision is recorded and the certificate issued, in one transaction."""
    return _move(principal, application_id, ("in_review",), "approved", note, "approved")


def reject(principal: Principal, application_id: str, reason: str) -> Application:
    """Reject, with the reason the applicant reads."""
    return _move(
        principal, application_id, ("in_review", "needs_info"), "rejected", reason, "rejected"
    )


def _move(
    principal: Principal,
    application_id: str,
    allowed_from: tuple[str, ...],
    to_status: str,
    note: str | None,
    action: str,
) -> Application:
    application = applications.load_for(principal, application_id, for_update=True)
    if application.status not in allowed_from:
        raise Conflict(
            _l(
                "This cannot be done to an application that is %(status)s.",
                status=application.status,
            )
        )
    before = {"status": application.status}
    if action == "claimed":
        application.claimed_by = principal.id
    if to_status in ("approved", "rejected"):
        application.decided_at = utcnow()
    timeline.transition(application, to_status, principal, note)
    if to_status == "approved" and application.applicant_id is not None:
        certificates.issue(application)
    audit.record(
        principal,
        f"application.{action}",
        "application",
        application.id,
        before=before,
        after={"status": to_status, "note": note},
    )
    db.session.commit()
    return application


# --- what the sweeps do to one application (civic.jobs finds them) -------------------------


def flag_overdue(application_id: str) -> bool:
    """Flag one application past its deadline and tell its department's officials, once."""
    application = _lock_for_sweep(application_id)
    now = utcnow()
    due = (
        application is not None
        and application.overdue_flagged_at is None
        and application.status in OPEN_STATUSES
        and application.deadline_at is not None
        and application.deadline_at < now
    )
    if application is not None and due:
        application.overdue_flagged_at = now
        for official_id in _officials_of(application.department_code):
            timeline.notify_overdue(application, official_id)
    db.session.commit()
    return due


def expire_unpaid(application_id: str) -> bool:
    """Expire one application whose fee was not paid in time (and is not being charged)."""
    application = _lock_for_sweep(application_id)
    due = (
        application is not None
        and application.status == "awaiting_payment"
        and application.expires_at is not None
        and application.expires_at < utcnow()
        and application.payment_status != "in_progress"
    )
    if application is not None and due:
        timeline.transition(application, "expired", None)
    db.session.commit()
    return due


def _lock_for_sweep(application_id: str) -> Application | None:
    """The row, locked; on PostgreSQL a row another sweeper holds is skipped (None)."""
    query = select(Application).where(Application.id == application_id)
    query = query.with_for_update(skip_locked=True) if db.is_postgresql() else query
    return db.session.scalars(query).one_or_none()


def _officials_of(department_code: str) -> list[str]:
    query = select(User.id).where(
        User.role == "official",
        User.department_code == department_code,
        User.is_active.is_(True),
    )
    return list(db.session.scalars(query))
