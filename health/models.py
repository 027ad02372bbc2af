"""health's tables: credit lines, face templates, check-in codes, visits, charges, bills,
settlements and refunds. Only ``health.service`` writes them.

Money is minor units in the currency of the credit bands; a bill's amount is the sum of its
visit's active charges, kept in step in the same transaction as any change to them.
"""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base, UTCDateTime, one_of
from core.ids import new_id

LINE_STATUSES = ("active", "suspended", "closed")
VISIT_STATUSES = ("open", "closed")
CHARGE_STATUSES = ("active", "voided")
BILL_STATUSES = ("open", "settled", "overdue", "refunded", "cancelled")
SETTLEMENT_KINDS = ("face", "automatic")
SETTLEMENT_STATUSES = ("pending", "requires_action", "succeeded", "failed")
REFUND_STATUSES = ("pending", "succeeded", "failed")
# Why a visit is not pay-later (the citizen pays at the desk as before).
INELIGIBLE_REASONS = (
    "below_threshold",
    "no_credit_line",
    "suspended",
    "limit_exhausted",
    "face_not_enrolled",
)


class CreditLine(Base):
    """A citizen's pay-after-treatment line: joined once, with the terms accepted.

    Its limit is not stored: it follows the citizen's credit score (civic's bands) as it
    changes; what is owed (``used``) is summed from open visits and unpaid bills.
    """

    __tablename__ = "health_credit_lines"
    __table_args__ = (CheckConstraint(one_of("status", LINE_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    terms_version: Mapped[str] = mapped_column(String(32))
    terms_accepted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FaceTemplate(Base):
    """The 128-number encoding of a citizen's face, AES-GCM encrypted; never the image.

    Enrolled only with the citizen's explicit consent (its time is recorded); deleted on
    request. ``failed_attempts`` counts mismatches and replays since the last success; at
    ``FACE_MAX_ATTEMPTS`` face payment is locked until ``locked_until``.
    """

    __tablename__ = "health_face_templates"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    encoding: Mapped[bytes] = mapped_column(LargeBinary)
    consented_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FaceProbe(Base):
    """The encrypted encoding of a photo once offered for verification, kept only to refuse
    the same photo offered again (a replay); erased with the template."""

    __tablename__ = "health_face_probes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    encoding: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CheckinCode(Base):
    """A code the app shows as a QR code at the hospital desk: signed, short-lived, used once."""

    __tablename__ = "health_checkin_codes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the code's random part
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Visit(Base):
    """A patient's visit to a hospital, posted by the hospital with the check-in code.

    ``eligible`` (pay-later) and ``ineligible_reason`` are decided at check-in; an ineligible
    visit is recorded (it counts in the usage ratio) but owes nothing through us.
    """

    __tablename__ = "health_visits"
    __table_args__ = (
        CheckConstraint(one_of("status", VISIT_STATUSES), name="status"),
        CheckConstraint(
            f"ineligible_reason IS NULL OR {one_of('ineligible_reason', INELIGIBLE_REASONS)}",
            name="reason",
        ),
        CheckConstraint("total >= 0", name="total_not_negative"),
        Index("ix_health_visits_hospital_status", "hospital_id", "status"),
        Index("ix_health_visits_user_status", "user_id", "status"),
        Index("ix_health_visits_visited_at", "visited_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    hospital_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    department: Mapped[str | None] = mapped_column(String(100))
    visited_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="open")
    eligible: Mapped[bool] = mapped_column(default=False)
    ineligible_reason: Mapped[str | None] = mapped_column(String(32))
    available_at_checkin: Mapped[int] = mapped_column(BigInteger, default=0)
    band_version: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Charge(Base):
    """One line of a visit: ``quantity`` * ``unit_price`` = ``amount``, in minor units.

    Before the bill is settled the hospital may void or correct it with a reason (audited);
    after, only a refund gives money back.
    """

    __tablename__ = "health_charges"
    __table_args__ = (
        CheckConstraint(one_of("status", CHARGE_STATUSES), name="status"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
        CheckConstraint("amount = quantity * unit_price", name="amount_is_product"),
        UniqueConstraint("visit_id", "line", name="uq_health_charges_visit_line"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    visit_id: Mapped[str] = mapped_column(ForeignKey("health_visits.id"))
    line: Mapped[int] = mapped_column(Integer)  # 1, 2, 3... in the order posted
    code: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="active")
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    corrected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    change_reason: Mapped[str | None] = mapped_column(String(255))


class Bill(Base):
    """What a closed visit owes, due by ``deadline`` (the settlement window after issue).

    ``settlement_id`` is the settlement that holds the bill: while it is pending, nobody else
    may charge the bill; when it fails it lets go; when it succeeds it is the one that paid.
    """

    __tablename__ = "health_bills"
    __table_args__ = (
        CheckConstraint(one_of("status", BILL_STATUSES), name="status"),
        CheckConstraint("total >= 0", name="total_not_negative"),
        CheckConstraint("refunded_amount >= 0 AND refunded_amount <= total", name="refunded"),
        Index("ix_health_bills_status_deadline", "status", "deadline"),
        Index("ix_health_bills_user_status", "user_id", "status"),
        Index("ix_health_bills_hospital_status", "hospital_id", "status"),
        Index("ix_health_bills_deadline", "deadline"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    visit_id: Mapped[str] = mapped_column(ForeignKey("health_visits.id"), unique=True)
    hospital_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="open")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    settlement_id: Mapped[str | None] = mapped_column(
        ForeignKey("health_settlements.id"), index=True
    )
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    auto_charge_attempts: Mapped[int] = mapped_column(Integer, default=0)
    penalised: Mapped[bool] = mapped_column(default=False)  # an overdue penalty was posted
    reminded_24h_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_2h_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)


class Settlement(Base):
    """One payment for one or more bills: by face in the app, or automatic at the deadline."""

    __tablename__ = "health_settlements"
    __table_args__ = (
        CheckConstraint(one_of("kind", SETTLEMENT_KINDS), name="kind"),
        CheckConstraint(one_of("status", SETTLEMENT_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_health_settlements_status_created", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    payment_id: Mapped[str | None] = mapped_column(String(36))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SettlementBill(Base):
    """Which bills a settlement pays."""

    __tablename__ = "health_settlement_bills"

    settlement_id: Mapped[str] = mapped_column(
        ForeignKey("health_settlements.id"), primary_key=True
    )
    bill_id: Mapped[str] = mapped_column(ForeignKey("health_bills.id"), primary_key=True)


class BillRefund(Base):
    """Money given back on a settled bill, through payments (``payment_refund_id``)."""

    __tablename__ = "health_bill_refunds"
    __table_args__ = (
        CheckConstraint(one_of("status", REFUND_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    bill_id: Mapped[str] = mapped_column(ForeignKey("health_bills.id"), index=True)
    payment_id: Mapped[str] = mapped_column(String(36), index=True)
    payment_refund_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
