"""civic's tables: the city credit score, departments, the service catalog, applications,
certificates and their signing keys. Only ``civic.service`` writes them."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base, UTCDateTime, one_of
from core.ids import new_id

# --- the city credit score -----------------------------------------------------------------


class CreditScore(Base):
    """A citizen's current score, kept in step with their events (same transaction)."""

    __tablename__ = "civic_credit_scores"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    score: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScoreEvent(Base):
    """One entry of a citizen's score ledger: what changed, why, on whose word.

    ``score_after`` is the clamped score once this event applied; replaying the events in order
    from the baseline gives the same figures. ``key`` makes a posting happen once.
    """

    __tablename__ = "civic_score_events"
    __table_args__ = (
        CheckConstraint("delta != 0", name="delta_not_zero"),
        Index("ix_civic_score_events_user_created", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64))
    agency: Mapped[str] = mapped_column(String(100))
    evidence: Mapped[str | None] = mapped_column(String(255))
    posted_by: Mapped[str] = mapped_column(String(100))  # "user:<id>", or the module that asked
    key: Mapped[str | None] = mapped_column(String(255), unique=True)
    score_after: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CreditBands(Base):
    """One version of the bands: the pay-after-treatment threshold and the limit per band.

    Versions are only ever added; the highest is in force. A decision records the version it
    was made under, so changing the bands never rewrites the past.
    """

    __tablename__ = "civic_credit_bands"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    threshold: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    bands: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{min, max|None, limit}]
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- departments and the service catalog ---------------------------------------------------

SERVICE_STATUSES = ("draft", "published", "retired")


class Department(Base):
    """A department of the city; officials are bound to one by its code."""

    __tablename__ = "civic_departments"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[dict[str, str]] = mapped_column(JSON)  # {ko, en, zh}
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Service(Base):
    """A government service citizens apply for; its content lives in versions."""

    __tablename__ = "civic_services"
    __table_args__ = (CheckConstraint(one_of("status", SERVICE_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    latest_version: Mapped[int] = mapped_column(Integer, default=1)
    published_version: Mapped[int | None] = mapped_column(Integer)  # what citizens see
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServiceVersion(Base):
    """One version of a service's content. Once published it never changes: editing makes the
    next version, and an application keeps the version it was submitted under."""

    __tablename__ = "civic_service_versions"
    __table_args__ = (
        UniqueConstraint("service_id", "version", name="uq_civic_service_versions_version"),
        CheckConstraint(
            "(fee_amount IS NULL AND fee_currency IS NULL) "
            "OR (fee_amount > 0 AND fee_currency IS NOT NULL)",
            name="fee",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(ForeignKey("civic_services.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(64), index=True)
    department_code: Mapped[str] = mapped_column(ForeignKey("civic_departments.code"))
    name: Mapped[dict[str, str]] = mapped_column(JSON)
    description: Mapped[dict[str, str]] = mapped_column(JSON)
    keywords: Mapped[list[str]] = mapped_column(JSON)
    fee_amount: Mapped[int | None] = mapped_column(Integer)
    fee_currency: Mapped[str | None] = mapped_column(String(3))
    processing_days: Mapped[int] = mapped_column(Integer)
    documents: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    open311: Mapped[bool] = mapped_column(default=False)
    # Names, descriptions and keywords in every language, normalised, for substring search.
    search_text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- applications --------------------------------------------------------------------------

APPLICATION_STATUSES = (
    "awaiting_payment",
    "submitted",
    "in_review",
    "needs_info",
    "approved",
    "rejected",
    "cancelled",
    "expired",
)
PAYMENT_STATUSES = (
    "unpaid",
    "in_progress",
    "requires_action",
    "failed",
    "succeeded",
    "refund_pending",
    "refunded",
)


class Application(Base):
    """A citizen's (or an Open311 client's) request for a service, under one version of it."""

    __tablename__ = "civic_applications"
    __table_args__ = (
        CheckConstraint(one_of("status", APPLICATION_STATUSES), name="status"),
        CheckConstraint(
            f"payment_status IS NULL OR {one_of('payment_status', PAYMENT_STATUSES)}",
            name="payment_status",
        ),
        CheckConstraint(
            "applicant_id IS NOT NULL OR reporter_organisation_id IS NOT NULL", name="who"
        ),
        Index("ix_civic_applications_queue", "department_code", "status", "submitted_at"),
        Index("ix_civic_applications_applicant", "applicant_id", "created_at"),
        Index("ix_civic_applications_deadline", "status", "deadline_at"),
        Index("ix_civic_applications_expiry", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(ForeignKey("civic_services.id"), index=True)
    service_version_id: Mapped[str] = mapped_column(ForeignKey("civic_service_versions.id"))
    department_code: Mapped[str] = mapped_column(ForeignKey("civic_departments.code"))
    applicant_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    reporter_organisation_id: Mapped[str | None] = mapped_column(ForeignKey("organisations.id"))
    status: Mapped[str] = mapped_column(String(32))
    status_note: Mapped[str | None] = mapped_column(Text)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    fee_amount: Mapped[int | None] = mapped_column(Integer)
    fee_currency: Mapped[str | None] = mapped_column(String(3))
    payment_status: Mapped[str | None] = mapped_column(String(32))
    payment_attempts: Mapped[int] = mapped_column(Integer, default=0)
    payment_id: Mapped[str | None] = mapped_column(String(36))  # the payment that paid the fee
    payment_failure: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    overdue_flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Filed through Open311: where, what, and the reporter's contact (never shown back).
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(Text)
    address_id: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    media_url: Mapped[str | None] = mapped_column(String(2000))
    contact: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    open311_token: Mapped[str | None] = mapped_column(String(64), unique=True)


class ApplicationDocument(Base):
    """A file uploaded with an application; the bytes live outside the database, named by
    their SHA-256. A later upload for the same code supersedes (the earlier row stays)."""

    __tablename__ = "civic_application_documents"
    __table_args__ = (Index("ix_civic_application_documents_app", "application_id", "code"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    application_id: Mapped[str] = mapped_column(
        ForeignKey("civic_applications.id", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(String(255))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TimelineEntry(Base):
    """One transition of an application: from, to, who, when and a note."""

    __tablename__ = "civic_timeline_entries"
    __table_args__ = (Index("ix_civic_timeline_entries_app", "application_id", "at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    application_id: Mapped[str] = mapped_column(
        ForeignKey("civic_applications.id", ondelete="CASCADE")
    )
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(100))  # "user:<id>", "organisation:<id>", "system"
    actor_role: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- certificates --------------------------------------------------------------------------


class Certificate(Base):
    """The signed e-certificate of an approved application (a compact JWS, EdDSA)."""

    __tablename__ = "civic_certificates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # the verification code
    application_id: Mapped[str] = mapped_column(ForeignKey("civic_applications.id"), unique=True)
    kid: Mapped[str] = mapped_column(String(64))
    jws: Mapped[str] = mapped_column(Text)
    claims: Mapped[dict[str, Any]] = mapped_column(JSON)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(255))


class SigningKey(Base):
    """A public key that has signed certificates. Kept for good, so that rotating the signing
    key leaves every earlier certificate verifiable through the published JWK Set."""

    __tablename__ = "civic_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_jwk: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
