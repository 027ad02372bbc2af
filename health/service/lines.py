"""Pay-later credit lines: joining, the terms, the limit, what is owed, eligibility.

The limit is never stored: it is the limit of the citizen's credit band now (civic's
``standing``), so it follows the score as it changes. What is owed (``used``) is the total of
the citizen's open pay-later visits and unpaid bills; a lower limit never cancels it.
"""

from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from civic.service import credit
from core import db
from core.clock import utcnow
from core.errors import Conflict, NotFound
from core.i18n import _l
from health.errors import JoinRefused
from health.models import Bill, CreditLine, FaceTemplate, Visit
from payments import service as payments

TERMS_TEXT = _l(
    "Pay after treatment: when your city credit score allows it, a participating hospital "
    "treats you without payment at the desk and posts the charges to this app. You settle "
    "each bill in the app, confirmed by your face, within the settlement window after the "
    "visit closes. A bill still unpaid at its deadline is charged to your saved card; if "
    "that fails, your credit line is suspended and your credit score is lowered until you "
    "pay. Your face is kept only as an encrypted encoding and you may delete it at any time."
)
UNPAID = ("open", "overdue")


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: str | None
    available: int
    currency: str
    band_version: int


def terms() -> dict[str, str]:
    """The current terms of pay-later, in the reader's language."""
    return {"version": current_app.config["HEALTH_TERMS_VERSION"], "text": str(TERMS_TEXT)}


def get_line(user_id: str, *, lock: bool = False) -> CreditLine | None:
    """The citizen's line; ``lock`` takes a row lock (PostgreSQL) for a limit check."""
    query = select(CreditLine).where(CreditLine.user_id == user_id)
    if lock:
        query = query.with_for_update()
    return db.session.scalars(query).one_or_none()


def has_face(user_id: str) -> bool:
    return db.session.get(FaceTemplate, user_id) is not None


def used(user_id: str) -> int:
    """What the citizen owes through pay-later: open pay-later visits and unpaid bills."""
    visits = select(func.coalesce(func.sum(Visit.total), 0)).where(
        Visit.user_id == user_id, Visit.eligible.is_(True), Visit.status == "open"
    )
    bills = select(func.coalesce(func.sum(Bill.total), 0)).where(
        Bill.user_id == user_id, Bill.status.in_(UNPAID)
    )
    return int(db.session.scalar(visits) or 0) + int(db.session.scalar(bills) or 0)


def available(user_id: str) -> int:
    """How much more may be posted now: the band's limit less what is owed (never below 0)."""
    return max(0, credit.standing(user_id).limit - used(user_id))


def line_view(user_id: str) -> dict[str, Any]:
    """What ``GET /credit-line`` shows; 404 for a citizen who never joined."""
    line = get_line(user_id)
    if line is None:
        raise NotFound(_l("You have not joined pay-later."))
    standing = credit.standing(user_id)
    owed = used(user_id)
    return {
        "status": line.status,
        "limit": standing.limit,
        "used": owed,
        "available": max(0, standing.limit - owed),
        "currency": standing.currency,
        "score": standing.score,
        "band": standing.band,
        "face_enrolled": has_face(user_id),
        "terms_version": line.terms_version,
        "joined_at": line.joined_at,
        "suspended_at": line.suspended_at,
        "closed_at": line.closed_at,
    }


def join(user_id: str, terms_version: str) -> dict[str, Any]:
    """Join pay-later; 422 naming every requirement not met, 409 when already a member."""
    line = get_line(user_id, lock=True)
    if line is not None and line.status != "closed":
        raise Conflict(_l("You have already joined pay-later."))
    missing = _missing_requirements(user_id, terms_version)
    if missing:
        raise JoinRefused(_l("You cannot join pay-later yet."), missing)
    now = utcnow()
    if line is None:
        line = CreditLine(user_id=user_id)
        db.session.add(line)
    line.status, line.terms_version, line.terms_accepted_at = "active", terms_version, now
    line.joined_at, line.suspended_at, line.closed_at = now, None, None
    db.session.commit()
    return line_view(user_id)


def _missing_requirements(user_id: str, terms_version: str) -> dict[str, Any]:
    missing: dict[str, Any] = {}
    standing = credit.standing(user_id)
    if not standing.eligible:
        missing["score"] = _l(
            "Your city credit score is %(score)s; pay-later needs %(threshold)s.",
            score=standing.score,
            threshold=standing.threshold,
        )
    if not payments.list_cards(user_id):
        missing["card"] = _l("Save a card for automatic payment first.")
    if not has_face(user_id):
        missing["face"] = _l("Enrol your face first.")
    current = current_app.config["HEALTH_TERMS_VERSION"]
    if terms_version != current:
        missing["terms_version"] = _l(
            "Accept the current terms (version %(version)s).", version=current
        )
    return missing


def close(user_id: str) -> dict[str, Any]:
    """Close the line; 409 while anything is owed or a pay-later visit is still open."""
    line = get_line(user_id, lock=True)
    if line is None or line.status == "closed":
        raise NotFound(_l("You have not joined pay-later."))
    open_visits = select(func.count()).where(
        Visit.user_id == user_id, Visit.eligible.is_(True), Visit.status == "open"
    )
    if used(user_id) > 0 or db.session.scalar(open_visits):
        raise Conflict(_l("Settle what you owe before closing pay-later."))
    line.status, line.closed_at = "closed", utcnow()
    db.session.commit()
    return line_view(user_id)


def eligibility(user_id: str) -> Eligibility:
    """Whether a visit starting now is pay-later, and if not, why (in the issue's order)."""
    standing = credit.standing(user_id)
    line = get_line(user_id)
    reason: str | None = None
    room = 0
    if not standing.eligible:
        reason = "below_threshold"
    elif line is None or line.status == "closed":
        reason = "no_credit_line"
    elif line.status == "suspended":
        reason = "suspended"
    elif not has_face(user_id):
        reason = "face_not_enrolled"
    else:
        room = max(0, standing.limit - used(user_id))
        reason = None if room > 0 else "limit_exhausted"
    return Eligibility(reason is None, reason, room, standing.currency, standing.band_version)


def suspend(user_id: str) -> None:
    """Suspend the line (an automatic charge failed), in the caller's transaction."""
    line = get_line(user_id, lock=True)
    if line is not None and line.status == "active":
        line.status, line.suspended_at = "suspended", utcnow()


def lift_suspension_if_clear(user_id: str) -> None:
    """Lift the suspension once nothing is overdue any more, in the caller's transaction."""
    line = get_line(user_id, lock=True)
    if line is None or line.status != "suspended":
        return
    overdue = select(func.count()).where(Bill.user_id == user_id, Bill.status == "overdue")
    if not db.session.scalar(overdue):
        line.status, line.suspended_at = "active", None
