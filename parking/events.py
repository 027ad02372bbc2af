"""What a sensor says, whatever carried it (HTTP, The Things Stack, MQTT)."""

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Event:
    """One message from a sensor: an observation, or a heartbeat (``occupied`` None)."""

    device_id: str
    occupied: bool | None
    observed_at: datetime
    received_at: datetime


def as_utc(moment: datetime) -> datetime:
    """An aware datetime in UTC (a naive one is taken as UTC, as sensors often send)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
