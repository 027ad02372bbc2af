"""civic's tables: the city credit score, departments, the service catalog, applications,
certificates and their signing keys. Only ``civic.service`` writes them."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base, UTCDateTime
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
