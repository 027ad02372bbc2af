"""Stripe customers, saved cards, payments, refunds, the ledger and received webhook events.

Only ``payments.service`` writes these tables.
"""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base, UTCDateTime, one_of
from core.ids import new_id
from core.money import SUPPORTED

PAYMENT_STATUSES = ("pending", "requires_action", "processing", "succeeded", "failed", "canceled")
REFUND_STATUSES = ("pending", "succeeded", "failed", "canceled")
# charge: +amount; refund: -amount; refund_reversal: +amount when a refund fails after succeeding.
LEDGER_KINDS = ("charge", "refund", "refund_reversal")

# The most one payment may be, per currency, in minor units: the database refuses more whatever
# the settings say (PAYMENT_MAX_AMOUNT and PAYMENT_MAX_AMOUNT_<CURRENCY> may only be lower; the
# app refuses to start otherwise). Stripe takes at most eight digits in one charge in each of
# the currencies we support (99,999,999: KRW 99,999,999, USD 999,999.99). A currency with
# another ceiling (IDR takes twelve digits) gets its own entry, and a migration.
STRIPE_MAX_AMOUNT = 99_999_999
AMOUNT_CEILINGS: dict[str, int] = dict.fromkeys(sorted(SUPPORTED), STRIPE_MAX_AMOUNT)


def amount_ceiling_check(ceilings: dict[str, int]) -> str:
    """The SQL of the CHECK that bounds ``amount`` per currency (and refuses any other)."""
    by_ceiling: dict[int, list[str]] = {}
    for currency, ceiling in sorted(ceilings.items()):
        by_ceiling.setdefault(ceiling, []).append(currency)
    return " OR ".join(
        f"({one_of('currency', tuple(codes))} AND amount <= {ceiling})"
        for ceiling, codes in sorted(by_ceiling.items())
    )


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
        CheckConstraint(amount_ceiling_check(AMOUNT_CEILINGS), name="amount_ceiling"),
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refunded <= amount", name="amount_refunded_within"
        ),
        Index("ix_payments_purpose_reference", "purpose", "reference"),
        Index("ix_payments_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    purpose: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(128))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    off_session: Mapped[bool] = mapped_column(default=False)
    stripe_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Refund(Base):
    """Money given back on a payment, in full or in part. Written ``pending`` before Stripe is
    called; ``succeeded`` may still become ``failed`` when Stripe reports it later."""

    __tablename__ = "payment_refunds"
    __table_args__ = (
        CheckConstraint(one_of("status", REFUND_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), default="pending")
    # SHA-256 of the payment, the caller and the request's Idempotency-Key: a retried request
    # finds this refund instead of making another. None without a key.
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(Base):
    """Append-only: +amount when a charge succeeds, -amount when a refund succeeds, +amount
    again when a refund fails after succeeding (a reversal; rows are never deleted).

    The paid balance of any ``(purpose, reference)`` is the sum of its entries.
    """

    __tablename__ = "payment_ledger"
    __table_args__ = (
        UniqueConstraint("kind", "source_id", name="uq_payment_ledger_kind_source"),
        CheckConstraint(one_of("kind", LEDGER_KINDS), name="kind"),
        CheckConstraint(
            "(kind = 'refund' AND amount < 0) OR (kind <> 'refund' AND amount > 0)", name="sign"
        ),
        Index("ix_payment_ledger_purpose_reference", "purpose", "reference"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))  # one of LEDGER_KINDS
    source_id: Mapped[str] = mapped_column(String(36))  # the payment or refund
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(128))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEvent(Base):
    """A Stripe event received; its id is the primary key, so each is processed once."""

    __tablename__ = "payment_webhook_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    object_id: Mapped[str | None] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
