"""The one clock. Code that depends on "now" asks here, so tests travel in time (time-machine)
instead of sleeping."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import current_app


def utcnow() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.now(UTC)


def city_timezone() -> ZoneInfo:
    """The city's timezone (setting ``CITY_TIMEZONE``), in which "today" is counted."""
    return ZoneInfo(current_app.config["CITY_TIMEZONE"])


def city_today() -> date:
    """Today's date in the city's timezone."""
    return utcnow().astimezone(city_timezone()).date()
