"""Stripe customers, saved cards, payments, refunds, the ledger and received webhook events.

Only ``payments.service`` writes these tables.
"""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base, UTCDateTime, one_of
from core.ids import new_id

PAYMENT_STATUSES = ("pending", "requires_action", "processing", "succeeded", "failed", "canceled")
REFUND_STATUSES = ("pending", "succeeded", "failed", "canceled")


class StripeCustomer(Base):
    """The Stripe customer of a citizen, created the first time one is needed."""

    __tablename__ = "payment_customers"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    stripe_customer_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SavedCard(Base):
    """A card saved for later off-session charges, with the citizen's recorded consent."""

    __tablename__ = "payment_methods"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    stripe_payment_method_id: Mapped[str] = mapped_column(String(255))
    setup_intent_id: Mapped[str] = mapped_column(String(255), unique=True)
    brand: Mapped[str | None] = mapped_column(String(32))
    last4: Mapped[str | None] = mapped_column(String(4))
    consent_version: Mapped[str] = mapped_column(String(32))
    consented_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Payment(Base):
    """One attempt to take money. Written ``pending`` before Stripe is called."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(one_of("status", PAYMENT_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_payments_purpose_reference", "purpose", "reference"),
        Index("ix_payments_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    purpose: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(128))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    off_session: Mapped[bool] = mapped_column(default=False)
    stripe_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    amount_refunded: Mapped[int] = mapped_column(Integer, default=0)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Refund(Base):
    """Money given back on a payment, in full or in part."""

    __tablename__ = "payment_refunds"
    __table_args__ = (
        CheckConstraint(one_of("status", REFUND_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), default="pending")
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """Append-only: +amount when a charge succeeds, -amount when a refund succeeds.

    The paid balance of any ``(purpose, reference)`` is the sum of its entries.
    """

    __tablename__ = "payment_ledger"
    __table_args__ = (
        UniqueConstraint("kind", "source_id", name="uq_payment_ledger_kind_source"),
        Index("ix_payment_ledger_purpose_reference", "purpose", "reference"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))  # "charge" or "refund"
    source_id: Mapped[str] = mapped_column(String(36))  # the payment or refund
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(128))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEvent(Base):
    """A Stripe event received; its id is the primary key, so each is processed once."""

    __tablename__ = "payment_webhook_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    object_id: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
