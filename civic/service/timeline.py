"""Moving an application from one status to another: the timeline entry (who, when, a note)
and the applicant's inbox message, in the caller's transaction."""

from sqlalchemy import select

from civic.models import Application, Service, ServiceVersion, TimelineEntry
from core import db
from core.auth.principal import Principal
from core.clock import utcnow
from core.i18n import Money, _l
from core.inbox import service as inbox

KIND = "civic.application"
MESSAGES = {
    "awaiting_payment": (
        _l("Payment needed"),
        _l("Your application for %(service)s waits for its fee of %(amount)s: %(reason)s"),
    ),
    "submitted": (
        _l("Application received"),
        _l("We received your application for %(service)s. A decision is due by %(deadline)s."),
    ),
    "in_review": (
        _l("Application in review"),
        _l("An official is reviewing your application for %(service)s."),
    ),
    "needs_info": (
        _l("More information needed"),
        _l("Your application for %(service)s needs more information: %(note)s"),
    ),
    "approved": (
        _l("Application approved"),
        _l("Your application for %(service)s was approved. Your certificate is in the app."),
    ),
    "rejected": (
        _l("Application rejected"),
        _l("Your application for %(service)s was rejected: %(note)s"),
    ),
    "cancelled": (
        _l("Application cancelled"),
        _l("Your application for %(service)s was cancelled. A fee you paid is refunded."),
    ),
    "expired": (
        _l("Application expired"),
        _l("Your application for %(service)s expired: its fee was not paid in time."),
    ),
}
OVERDUE = (
    _l("Application overdue"),
    _l("An application for %(service)s passed its deadline of %(deadline)s."),
)


def transition(
    application: Application,
    to_status: str,
    actor: Principal | None,
    note: str | None = None,
    *,
    reason: str | None = None,
    notify: bool = True,
    created: bool = False,
) -> TimelineEntry:
    """Move ``application`` to ``to_status``, record it, tell the applicant (no commit).
    ``created``: the application was just made in ``to_status`` (the timeline's first entry)."""
    entry = TimelineEntry(
        application_id=application.id,
        from_status=None if created else application.status,
        to_status=to_status,
        actor=actor.actor if actor else "system",
        actor_role=actor.role if actor else "system",
        note=note,
        at=utcnow(),
    )
    db.session.add(entry)
    application.status, application.status_note = to_status, note
    application.updated_at = entry.at
    if notify and application.applicant_id is not None:
        notify_applicant(application, to_status, note=note, reason=reason)
    return entry


def notify_applicant(
    application: Application, status: str, *, note: str | None = None, reason: str | None = None
) -> None:
    title, body = MESSAGES[status]
    assert application.applicant_id is not None
    inbox.notify(
        application.applicant_id,
        KIND,
        title,
        body,
        params={
            "service": service_name(application, inbox.recipient_locale(application.applicant_id)),
            "deadline": application.deadline_at,
            "amount": _fee(application),
            "note": note or "",
            "reason": reason or "",
        },
        data={"application_id": application.id, "status": status},
    )


def notify_overdue(application: Application, official_id: str) -> None:
    title, body = OVERDUE
    inbox.notify(
        official_id,
        KIND,
        title,
        body,
        params={
            "service": service_name(application, inbox.recipient_locale(official_id)),
            "deadline": application.deadline_at,
        },
        data={"application_id": application.id, "status": application.status, "overdue": True},
    )


def _fee(application: Application) -> Money | str:
    if application.fee_amount is None or application.fee_currency is None:
        return ""
    return Money(application.fee_amount, application.fee_currency)


def service_name(application: Application, lang: str) -> str:
    names = db.session.scalar(
        select(ServiceVersion.name).where(ServiceVersion.id == application.service_version_id)
    )
    names = names or {}
    return names.get(lang) or next(iter(names.values()), "")


def service_code(application: Application) -> str:
    return db.session.scalar(select(Service.code).where(Service.id == application.service_id)) or ""


def entries(application_id: str) -> list[TimelineEntry]:
    query = (
        select(TimelineEntry)
        .where(TimelineEntry.application_id == application_id)
        .order_by(TimelineEntry.at, TimelineEntry.id)
    )
    return list(db.session.scalars(query))
