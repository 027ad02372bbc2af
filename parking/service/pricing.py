"""What a stay costs under a lot's tariff.

Free minutes first; then every started ``unit_minutes`` costs ``unit_price`` (or the price of the
time-of-day period the unit starts in, in the city's timezone); each 24 hours from the start cost
at most ``daily_max``. Integers of minor units throughout.
"""

import math
from datetime import datetime, time, timedelta
from typing import Any

from core.clock import city_timezone
from parking.models import ParkingTariff

DAY = timedelta(hours=24)


def quote(tariff: ParkingTariff, starts_at: datetime, ends_at: datetime) -> int:
    """The price of parking from ``starts_at`` to ``ends_at`` (0 when within the free minutes)."""
    if ends_at <= starts_at:
        return 0
    billable_from = starts_at + timedelta(minutes=tariff.free_minutes)
    total, day_start = 0, starts_at
    while day_start < ends_at:
        day_end = min(day_start + DAY, ends_at)
        day_price = _units_price(tariff, max(day_start, billable_from), day_end)
        if tariff.daily_max is not None:
            day_price = min(day_price, tariff.daily_max)
        total += day_price
        day_start += DAY
    return total


def _units_price(tariff: ParkingTariff, start: datetime, end: datetime) -> int:
    if end <= start:
        return 0
    unit = timedelta(minutes=tariff.unit_minutes)
    units = math.ceil((end - start) / unit)
    if not tariff.periods:
        return units * tariff.unit_price
    return sum(_unit_price_at(tariff, start + i * unit) for i in range(units))


def _unit_price_at(tariff: ParkingTariff, at: datetime) -> int:
    local = at.astimezone(city_timezone()).time()
    for period in tariff.periods or []:
        if _within(local, _hhmm(period["from"]), _hhmm(period["to"])):
            return int(period["unit_price"])
    return tariff.unit_price


def _within(moment: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end  # a period across midnight (22:00-06:00)


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours) % 24, int(minutes))


def tariff_view(tariff: ParkingTariff | None) -> dict[str, Any] | None:
    if tariff is None:
        return None
    return {
        "free_minutes": tariff.free_minutes,
        "unit_minutes": tariff.unit_minutes,
        "unit_price": tariff.unit_price,
        "daily_max": tariff.daily_max,
        "currency": tariff.currency,
        "periods": tariff.periods or [],
    }
