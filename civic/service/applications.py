"""Applications, the citizen's side: submitting with answers, documents and the fee; paying
later; answering an official; cancelling (a paid fee is refunded); reading one's own.

The fee goes through ``payments.service.charge`` with the purpose ``civic_application`` and the
idempotency key ``application-<id>-attempt-<n>``. What Stripe says later (a webhook after
3-D Secure, the reconciliation sweep) arrives through the outbox handlers at the bottom, which
are idempotent and share their rules with the synchronous path.
"""

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from civic.errors import FormInvalid
from civic.models import Application, ApplicationDocument, Certificate, Service, ServiceVersion
from civic.service import catalog, documents, forms, timeline
from civic.service.documents import Upload
from core import db
from core.auth.models import User
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import Conflict, DomainError, InvalidInput, NotFound
from core.i18n import _l
from core.ids import new_id
from payments import service as payments
from payments.signals import PaymentOutcome

log = logging.getLogger("civic.applications")

PURPOSE = "civic_application"
OPEN_STATUSES = ("submitted", "in_review", "needs_info")
CLOSED_STATUSES = ("approved", "rejected", "cancelled", "expired")
NO_CARD = _l("No saved card; save one first.")


@dataclass(frozen=True)
class Outcome:
    """An application as a request left it, and the client secret when the app must finish
    3-D Secure (``requires_action``)."""

    application: Application
    client_secret: str | None = None


# --- submitting ----------------------------------------------------------------------------


def submit(
    principal: Principal,
    service_code: str,
    answers_json: str | None,
    uploads: dict[str, Upload],
    payment_method: str | None = None,
) -> Outcome:
    """Apply for a published service. Everything is checked before anything is written;
    a refused submission leaves neither a row nor a file. A fee is charged at once."""
    service, version = _applicable(service_code)
    answers = parse_answers(answers_json)
    documents.check_sizes(version.documents, uploads)
    kept, errors = forms.check_answers(version.fields, answers)
    errors |= documents.check_documents(version.documents, uploads)
    if errors:
        raise FormInvalid(_l("Some answers or documents are not right."), errors)
    stored = documents.store(uploads)
    try:
        application = _create(principal, service, version, kept)
        db.session.add_all(documents.rows(application.id, stored))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        documents.discard(stored)
        raise
    if application.fee_amount is None:
        return Outcome(application)
    return _charge(application.id, payment_method)


def _applicable(service_code: str) -> tuple[Service, ServiceVersion]:
    try:
        return catalog.get_published(service_code)
    except NotFound:
        raise InvalidInput(_l("No such service."), field="service", location="form") from None


def parse_answers(answers_json: str | None) -> dict[str, Any]:
    """The ``answers`` part: a JSON object of field code to value."""
    if answers_json is None or answers_json.strip() == "":
        return {}
    try:
        answers = json.loads(answers_json)
    except ValueError:
        answers = None
    if not isinstance(answers, dict):
        raise InvalidInput(_l("Not a valid mapping type."), field="answers", location="form")
    return answers


def _create(
    principal: Principal, service: Service, version: ServiceVersion, answers: dict[str, Any]
) -> Application:
    now = utcnow()
    free = version.fee_amount is None
    application = Application(
        id=new_id(),
        service_id=service.id,
        service_version_id=version.id,
        department_code=version.department_code,
        applicant_id=principal.id,
        status="submitted" if free else "awaiting_payment",
        answers=answers,
        fee_amount=version.fee_amount,
        fee_currency=version.fee_currency,
        payment_status=None if free else "unpaid",
        payment_attempts=0,
        created_at=now,
        updated_at=now,
    )
    if free:
        application.submitted_at = now
        application.deadline_at = now + timedelta(days=version.processing_days)
    else:
        hours = current_app.config["CIVIC_PAYMENT_EXPIRY_HOURS"]
        application.expires_at = now + timedelta(hours=hours)
    db.session.add(application)
    db.session.flush()
    # the citizen hears about a fee only if it cannot be taken at once
    timeline.transition(application, application.status, principal, created=True, notify=free)
    return application


def submit_now(application: Application, actor: Principal | None, note: str | None = None) -> None:
    """A paid application enters the department's queue; its deadline starts now."""
    now = utcnow()
    days = version_of(application).processing_days
    application.submitted_at = now
    application.deadline_at = now + timedelta(days=days)
    application.expires_at = None
    timeline.transition(application, "submitted", actor, note)


# --- paying --------------------------------------------------------------------------------


def pay(principal: Principal, application_id: str, payment_method: str | None) -> Outcome:
    """Pay the fee of an application waiting for it (a new attempt)."""
    load_for(principal, application_id)
    return _charge(application_id, payment_method)


def _charge(application_id: str, payment_method: str | None) -> Outcome:
    application = lock(application_id)
    assert application is not None and application.applicant_id is not None
    if application.status != "awaiting_payment":
        raise Conflict(_l("This application is not waiting for a payment."))
    if application.payment_status == "in_progress":
        raise Conflict(_l("A payment for this application is in progress."))
    if payment_method is None and not payments.list_cards(application.applicant_id):
        _payment_failed(application, application.payment_attempts, str(NO_CARD))
        db.session.commit()
        return Outcome(application)
    application.payment_attempts += 1
    attempt = application.payment_attempts
    application.payment_status, application.payment_failure = "in_progress", None
    db.session.commit()  # payments refuses to run with our writes pending
    try:
        payment = payments.charge(
            application.applicant_id,
            application.fee_amount or 0,
            application.fee_currency or "",
            PURPOSE,
            application.id,
            payment_method=payment_method,
            idempotency_key=f"application-{application.id}-attempt-{attempt}",
        )
    except DomainError as refused:
        db.session.rollback()
        application = lock(application_id)
        assert application is not None
        _payment_failed(application, attempt, str(refused.message))
        db.session.commit()
        raise
    return _after_charge(application_id, payment.id, payment.status, attempt)


def _after_charge(application_id: str, payment_id: str, status: str, attempt: int) -> Outcome:
    """Apply what the charge returned (the outbox handler may have done it already)."""
    application = lock(application_id)
    assert application is not None
    refund = None
    if status == "succeeded":
        refund = _paid(application, payment_id)
    elif status in ("failed", "canceled"):
        payment = payments.get_payment(payment_id)
        _payment_failed(application, attempt, payment.failure_message)
    elif status == "requires_action" and _current_attempt(application, attempt):
        application.payment_status = "requires_action"
    db.session.commit()
    if refund:
        _refund(refund, "fee already paid")
    secret = payments.client_secret(payment_id) if status == "requires_action" else None
    return Outcome(application, secret)


def _current_attempt(application: Application, attempt: int) -> bool:
    return (
        application.status == "awaiting_payment"
        and application.payment_attempts == attempt
        and application.payment_status in ("in_progress", "requires_action")
    )


def _paid(application: Application, payment_id: str) -> str | None:
    """Record a succeeded payment (idempotent); returns a payment to refund, if it was not
    needed (the application was cancelled or expired, or another payment paid it)."""
    if application.payment_id == payment_id:
        return None
    if application.status == "awaiting_payment":
        application.payment_status, application.payment_id = "succeeded", payment_id
        application.payment_failure = None
        submit_now(application, None, note="fee paid")
        return None
    if application.status in ("cancelled", "expired") and application.payment_id is None:
        application.payment_status, application.payment_id = "refund_pending", payment_id
    return payment_id


def _payment_failed(application: Application, attempt: int, reason: str | None) -> None:
    """Record a failed attempt (idempotent; a stale attempt's failure changes nothing)."""
    if attempt != application.payment_attempts or application.status != "awaiting_payment":
        return
    if application.payment_status == "failed" and attempt > 0:
        return
    application.payment_status = "failed"
    application.payment_failure = reason or str(_l("The payment was not accepted."))
    application.updated_at = utcnow()
    timeline.notify_applicant(application, "awaiting_payment", reason=application.payment_failure)


def _refund(payment_id: str, reason: str) -> None:
    """Give back a payment the application no longer needs; payments settles it later if
    Stripe is away. Already refunded, or a refund under way: nothing more to do."""
    try:
        payments.refund(payment_id, None, reason)
    except DomainError as refused:
        log.info("refund not made", extra={"payment": payment_id, "why": str(refused.message)})


# --- the payment rail's outcomes (outbox handlers; idempotent) ------------------------------


def on_payment_succeeded(outcome: PaymentOutcome) -> None:
    application = lock(outcome.reference)
    if application is None:
        return
    refund = _paid(application, outcome.payment_id)
    db.session.commit()
    if refund:
        _refund(refund, "fee not needed")


def on_payment_failed(outcome: PaymentOutcome) -> None:
    application = lock(outcome.reference)
    if application is None:
        return
    _payment_failed(application, _attempt_of(outcome.payment_id), outcome.failure_message)
    db.session.commit()


def on_refund_succeeded(outcome: PaymentOutcome) -> None:
    application = lock(outcome.reference)
    if application is None:
        return
    if application.payment_id == outcome.payment_id and application.payment_status in (
        "succeeded",
        "refund_pending",
    ):
        application.payment_status, application.updated_at = "refunded", utcnow()
    db.session.commit()


def _attempt_of(payment_id: str) -> int:
    key = payments.get_payment(payment_id).idempotency_key
    return int(key.rsplit("-attempt-", 1)[-1]) if "-attempt-" in key else -1


# --- answering, cancelling -----------------------------------------------------------------


def answer(
    principal: Principal,
    application_id: str,
    answers_json: str | None,
    uploads: dict[str, Upload],
    note: str | None,
) -> Application:
    """Give the information an official asked for: answers (merged onto the earlier ones),
    documents, a note. The application goes back to the official."""
    application = load_for(principal, application_id, for_update=True)
    if application.status != "needs_info":
        raise Conflict(_l("This application is not waiting for information."))
    version = version_of(application)
    answers = parse_answers(answers_json)
    documents.check_sizes(version.documents, uploads)
    kept, errors = forms.check_answers(version.fields, {**application.answers, **answers})
    errors |= documents.check_documents(version.documents, uploads, require=False)
    if errors:
        raise FormInvalid(_l("Some answers or documents are not right."), errors)
    stored = documents.store(uploads)
    try:
        application.answers = kept
        db.session.add_all(documents.rows(application.id, stored))
        timeline.transition(application, "in_review", principal, note)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        documents.discard(stored)
        raise
    return application


def cancel(principal: Principal, application_id: str) -> Application:
    """Withdraw an application before an official takes it up; a paid fee is refunded."""
    application = load_for(principal, application_id, for_update=True)
    if application.status not in ("awaiting_payment", "submitted"):
        raise Conflict(_l("Only an application not yet in review can be cancelled."))
    paid = application.payment_status == "succeeded" and application.payment_id is not None
    if paid:
        application.payment_status = "refund_pending"
    timeline.transition(application, "cancelled", principal)
    db.session.commit()
    if paid and application.payment_id:
        _refund(application.payment_id, "application cancelled")
    return load_for(principal, application_id)


# --- reading -------------------------------------------------------------------------------


def lock(application_id: str) -> Application | None:
    """The application, locked for update until the transaction ends."""
    query = select(Application).where(Application.id == application_id).with_for_update()
    return db.session.scalars(query).one_or_none()


def visible_to(principal: Principal, application: Application) -> bool:
    """A citizen sees their own applications; an official those of their department."""
    if principal.role == "citizen":
        return application.applicant_id == principal.id
    if principal.role == "official":
        return application.department_code == principal.department
    return False


def load_for(principal: Principal, application_id: str, *, for_update: bool = False) -> Application:
    """The application if ``principal`` may see it; 404 otherwise (never 403)."""
    application = (
        lock(application_id) if for_update else db.session.get(Application, application_id)
    )
    if application is None or not visible_to(principal, application):
        raise NotFound(_l("No such application."))
    return application


def version_of(application: Application) -> ServiceVersion:
    version = db.session.get(ServiceVersion, application.service_version_id)
    assert version is not None
    return version


def mine(principal: Principal, lang: str, page: int, page_size: int) -> tuple[list[dict], int]:
    """The citizen's applications, newest first: one page and the total."""
    query = select(Application).where(Application.applicant_id == principal.id)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(
        query.order_by(Application.created_at.desc(), Application.id)
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return [summary(a, lang) for a in rows], int(total)


def detail(principal: Principal, application_id: str, lang: str) -> dict[str, Any]:
    return view(load_for(principal, application_id), lang)


def summary(application: Application, lang: str) -> dict[str, Any]:
    """What a list shows of an application."""
    version = version_of(application)
    now = utcnow()
    return {
        "id": application.id,
        "service": {
            "code": timeline.service_code(application),
            "version": version.version,
            "name": version.name.get(lang) or next(iter(version.name.values()), ""),
        },
        "department": application.department_code,
        "status": application.status,
        "submitted_at": application.submitted_at,
        "deadline_at": application.deadline_at,
        "overdue": bool(
            application.status in OPEN_STATUSES
            and application.deadline_at is not None
            and application.deadline_at < now
        ),
        "created_at": application.created_at,
        "updated_at": application.updated_at,
    }


def view(application: Application, lang: str, client_secret: str | None = None) -> dict[str, Any]:
    """An application with its answers, documents, payment, timeline and certificate."""
    applicant = db.session.get(User, application.applicant_id) if application.applicant_id else None
    certificate = db.session.scalar(
        select(Certificate.code).where(Certificate.application_id == application.id)
    )
    return {
        **summary(application, lang),
        "status_note": application.status_note,
        "answers": application.answers,
        "applicant": {"id": applicant.id, "name": applicant.name} if applicant else None,
        "fee": _fee_view(application),
        "documents": latest_documents(application.id),
        "timeline": [
            {
                "from_status": e.from_status,
                "to_status": e.to_status,
                "by": e.actor_role,
                "note": e.note,
                "at": e.at,
            }
            for e in timeline.entries(application.id)
        ],
        "decided_at": application.decided_at,
        "expires_at": application.expires_at,
        "certificate": certificate,
        "client_secret": client_secret,
    }


def _fee_view(application: Application) -> dict[str, Any] | None:
    if application.fee_amount is None:
        return None
    return {
        "amount": application.fee_amount,
        "currency": application.fee_currency,
        "payment_status": application.payment_status,
        "attempts": application.payment_attempts,
        "failure": application.payment_failure,
        "payment_id": application.payment_id,
    }


def latest_documents(application_id: str) -> list[ApplicationDocument]:
    """The current document for each code (a later upload supersedes an earlier one)."""
    query = (
        select(ApplicationDocument)
        .where(ApplicationDocument.application_id == application_id)
        .order_by(ApplicationDocument.uploaded_at.desc(), ApplicationDocument.id)
    )
    latest: dict[str, ApplicationDocument] = {}
    for row in db.session.scalars(query):
        latest.setdefault(row.code, row)
    return sorted(latest.values(), key=lambda row: row.code)


def document(principal: Principal, application_id: str, code: str) -> ApplicationDocument:
    """One of the application's documents (its file must still be on disk); 404 otherwise."""
    load_for(principal, application_id)
    row = next((d for d in latest_documents(application_id) if d.code == code), None)
    if row is None or not documents.path_of(row.sha256).is_file():
        raise NotFound(_l("No such document."))
    return row
