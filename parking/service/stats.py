"""An operator's figures for a lot: occupancy by hour from the sensor history, reservations,
the no-show rate and revenue."""

import itertools
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from core import db
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import InvalidInput
from core.i18n import _l
from parking.events import as_utc
from parking.models import ParkingSensor, ParkingSpace, SensorEvent
from parking.service.operators import get_lot
from parking.service.reservations import stats_reservations

HOUR = timedelta(hours=1)
MAX_WINDOW = timedelta(days=31)


def lot_stats(operator: Principal, lot_id: str, since: datetime, until: datetime) -> dict[str, Any]:
    """Figures for ``[since, until)`` (at most 31 days, whole hours)."""
    lot = get_lot(operator, lot_id)
    since, until = _hour_floor(as_utc(since)), as_utc(until)
    if until <= since or until - since > MAX_WINDOW:
        raise InvalidInput(
            _l("The window must be positive and at most 31 days."), field="to", location="query"
        )
    sensors = list(
        db.session.scalars(
            select(ParkingSensor.id)
            .join(ParkingSpace, ParkingSpace.id == ParkingSensor.space_id)
            .where(ParkingSpace.lot_id == lot.id)
        )
    )
    hours = _occupancy_by_hour(sensors, since, until)
    return {
        "lot_id": lot.id,
        "from": since,
        "to": until,
        "sensors": len(sensors),
        "occupancy_by_hour": hours,
        **stats_reservations(lot.id, since, until),
    }


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _occupancy_by_hour(
    sensor_ids: list[str], since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """For each hour, the share of sensor-time the spaces were occupied (None: no data)."""
    occupied_seconds: dict[datetime, float] = defaultdict(float)
    known_seconds: dict[datetime, float] = defaultdict(float)
    for sensor_id, timeline in _timelines(sensor_ids, since, until).items():
        del sensor_id
        for (start, occupied), (end, _) in itertools.pairwise(timeline):
            _spread(start, end, occupied, occupied_seconds, known_seconds)
    result = []
    hour = since
    while hour < until:
        known = known_seconds.get(hour, 0.0)
        share = round(occupied_seconds.get(hour, 0.0) / known, 4) if known else None
        result.append({"hour": hour, "occupancy": share})
        hour += HOUR
    return result


def _timelines(
    sensor_ids: list[str], since: datetime, until: datetime
) -> dict[str, list[tuple[datetime, bool | None]]]:
    """Per sensor: its state at ``since`` (from the last observation before it), every change
    inside the window, and the window's end."""
    if not sensor_ids:
        return {}
    before = (
        select(SensorEvent.sensor_id, func.max(SensorEvent.observed_at).label("at"))
        .where(SensorEvent.sensor_id.in_(sensor_ids), SensorEvent.observed_at < since)
        .group_by(SensorEvent.sensor_id)
        .subquery()
    )
    initial = db.session.execute(
        select(SensorEvent.sensor_id, SensorEvent.occupied).join(
            before,
            (before.c.sensor_id == SensorEvent.sensor_id)
            & (before.c.at == SensorEvent.observed_at),
        )
    )
    timelines: dict[str, list[tuple[datetime, bool | None]]] = {
        sensor_id: [(since, None)] for sensor_id in sensor_ids
    }
    for sensor_id, occupied in initial:
        timelines[sensor_id] = [(since, occupied)]
    changes = db.session.execute(
        select(SensorEvent.sensor_id, SensorEvent.observed_at, SensorEvent.occupied)
        .where(
            SensorEvent.sensor_id.in_(sensor_ids),
            SensorEvent.observed_at >= since,
            SensorEvent.observed_at < until,
        )
        .order_by(SensorEvent.sensor_id, SensorEvent.observed_at)
    )
    for sensor_id, observed_at, occupied in changes:
        timelines[sensor_id].append((as_utc(observed_at), occupied))
    end = min(until, utcnow())  # the last known state lasts until now, not into the future
    for timeline in timelines.values():
        timeline.append((max(end, timeline[-1][0]), None))
    return timelines


def _spread(
    start: datetime,
    end: datetime,
    occupied: bool | None,
    occupied_seconds: dict[datetime, float],
    known_seconds: dict[datetime, float],
) -> None:
    """Add the interval's seconds to the hours it covers (unknown state adds nothing)."""
    if occupied is None:
        return
    cursor = start
    while cursor < end:
        hour = _hour_floor(cursor)
        piece_end = min(end, hour + HOUR)
        seconds = (piece_end - cursor).total_seconds()
        known_seconds[hour] += seconds
        if occupied:
            occupied_seconds[hour] += seconds
        cursor = piece_end
