"""Lots, spaces, tariffs, sensors and their history, gateways, reservations, ingest counters.

Only ``parking.service`` writes these tables. The current occupancy of a space is kept on its
sensor row (``occupied``, ``observed_at``, ``last_seen_at``): one sensor per space, so that row is
the space's materialised state, updated in place by ingestion; the history is append-only.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base, UTCDateTime, one_of
from core.ids import new_id

SPACE_KINDS = ("car", "ev", "disabled", "motorcycle")
RESERVATION_STATUSES = (
    "held",
    "confirmed",
    "active",
    "completed",
    "no_show",
    "canceled",
    "expired",
)
# Reservations that hold their space: the exclusion constraint covers exactly these.
BLOCKING_STATUSES = ("held", "confirmed", "active")
SOURCES = ("http", "ttn", "mqtt")
# A history id is internal (never on the wire), so a compact integer; SQLite wants INTEGER.
HistoryId = BigInteger().with_variant(Integer(), "sqlite")


class ParkingLot(Base):
    """A car park run by a parking operator (an organisation of kind ``parking_operator``)."""

    __tablename__ = "parking_lots"
    __table_args__ = (
        Index("ix_parking_lots_lat_lon", "lat", "lon"),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="position"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    operator_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    opening_hours: Mapped[str | None] = mapped_column(String(200))
    features: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ParkingSpace(Base):
    """One space of a lot; ``closed`` takes it out of service."""

    __tablename__ = "parking_spaces"
    __table_args__ = (
        UniqueConstraint("lot_id", "code", name="uq_parking_spaces_lot_code"),
        CheckConstraint(one_of("kind", SPACE_KINDS), name="kind"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    lot_id: Mapped[str] = mapped_column(ForeignKey("parking_lots.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16), default="car")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ParkingTariff(Base):
    """A lot's price: free minutes, then ``unit_price`` per started ``unit_minutes``, capped per
    24 hours by ``daily_max``; ``periods`` optionally price units by the time of day."""

    __tablename__ = "parking_tariffs"
    __table_args__ = (
        CheckConstraint("unit_minutes > 0 AND unit_price >= 0 AND free_minutes >= 0", name="sane"),
    )

    lot_id: Mapped[str] = mapped_column(
        ForeignKey("parking_lots.id", ondelete="CASCADE"), primary_key=True
    )
    free_minutes: Mapped[int] = mapped_column(Integer, default=0)
    unit_minutes: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(Integer)
    daily_max: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    periods: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ParkingSensor(Base):
    """An occupancy sensor on one space, and that space's current state as it last reported."""

    __tablename__ = "parking_sensors"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    device_id: Mapped[str] = mapped_column(String(100), unique=True)
    space_id: Mapped[str] = mapped_column(
        ForeignKey("parking_spaces.id", ondelete="CASCADE"), unique=True
    )
    # the space's lot, kept here so a lot's states are read through an index, not a scan
    lot_id: Mapped[str] = mapped_column(ForeignKey("parking_lots.id"), index=True)
    operator_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    occupied: Mapped[bool | None] = mapped_column(Boolean)
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # newest observation
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when `occupied` last changed
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SensorEvent(Base):
    """One occupancy observation, kept even when stale. Append-only (a trigger refuses UPDATE)."""

    __tablename__ = "parking_sensor_events"
    __table_args__ = (
        UniqueConstraint("sensor_id", "observed_at", name="uq_parking_sensor_events_observation"),
    )

    id: Mapped[int] = mapped_column(HistoryId, primary_key=True, autoincrement=True)
    sensor_id: Mapped[str] = mapped_column(ForeignKey("parking_sensors.id", ondelete="CASCADE"))
    occupied: Mapped[bool] = mapped_column(Boolean)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(8))


class ParkingGateway(Base):
    """A sensor gateway's key (HTTP): shown once, stored hashed, found by its prefix."""

    __tablename__ = "parking_gateways"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    operator_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Reservation(Base):
    """A citizen's booking of one space for a window; the sensor drives it once paid.

    held → confirmed (paid) → active (arrived) → completed (left); or no_show, canceled,
    expired (unpaid hold). On PostgreSQL an exclusion constraint (created by the migration)
    forbids two blocking reservations of one space whose windows overlap.
    """

    __tablename__ = "parking_reservations"
    __table_args__ = (
        CheckConstraint(one_of("status", RESERVATION_STATUSES), name="status"),
        CheckConstraint("ends_at > starts_at", name="window"),
        Index("ix_parking_reservations_space_window", "space_id", "starts_at", "ends_at"),
        Index("ix_parking_reservations_status_starts_at", "status", "starts_at"),
        Index("ix_parking_reservations_user_status", "user_id", "status"),
        Index("ix_parking_reservations_lot_starts_at", "lot_id", "starts_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    lot_id: Mapped[str] = mapped_column(ForeignKey("parking_lots.id"))
    space_id: Mapped[str] = mapped_column(ForeignKey("parking_spaces.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    vehicle_plate: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), default="held")
    quote_amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    payment_attempts: Mapped[int] = mapped_column(Integer, default=0)
    payment_id: Mapped[str | None] = mapped_column(String(36))
    payment_status: Mapped[str | None] = mapped_column(String(32))
    payment_failure: Mapped[str | None] = mapped_column(String(255))
    amount_paid: Mapped[int] = mapped_column(Integer, default=0)
    fee_amount: Mapped[int] = mapped_column(Integer, default=0)
    overstay_amount: Mapped[int] = mapped_column(Integer, default=0)
    overstay_payment_id: Mapped[str | None] = mapped_column(String(36))
    overstay_paid: Mapped[int] = mapped_column(Integer, default=0)
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    departed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IngestCount(Base):
    """Sensor events counted by source and outcome, and the latest ingest lag, shared by every
    process (the ingest worker and the web workers) so ``/metrics`` shows them all."""

    __tablename__ = "parking_ingest_counts"

    source: Mapped[str] = mapped_column(String(8), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    last_lag_ms: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
