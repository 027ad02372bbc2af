"""Where a citizen can park: lots around a point with their free spaces and a price, and the
status of every space (``free``, ``occupied``, ``closed``, ``unknown``).

A space's status comes from its sensor's materialised state: ``unknown`` without a sensor, before
its first report, or once the sensor has been silent for ``PARKING_SENSOR_OFFLINE_SECONDS``.
Availability is three set-based queries whatever the number of spaces: the lots inside the
bounding box of the circle (an index on lat/lon), one grouped count over their spaces, and their
tariffs; the exact haversine distance is then computed for the few lots in the box.
"""

import math
import time
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, case, func, or_, select

from core import db
from core.clock import utcnow
from core.errors import InvalidInput, NotFound
from core.i18n import _l
from parking.models import (
    BLOCKING_STATUSES,
    ParkingLot,
    ParkingSensor,
    ParkingSpace,
    ParkingTariff,
    Reservation,
)
from parking.service.pricing import quote

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = 111_320.0
MAX_LOTS = 50
CACHE_ENTRIES = 4096


def offline_cutoff(now: datetime) -> datetime:
    return now - timedelta(seconds=current_app.config["PARKING_SENSOR_OFFLINE_SECONDS"])


def status_of(now: datetime) -> ColumnElement[str]:
    """The SQL of a space's status (needs ParkingSpace outer-joined to its ParkingSensor)."""
    silent = or_(
        ParkingSensor.id.is_(None),
        ParkingSensor.occupied.is_(None),
        ParkingSensor.last_seen_at.is_(None),
        ParkingSensor.last_seen_at < offline_cutoff(now),
    )
    return case(
        (ParkingSpace.closed.is_(True), "closed"),
        (silent, "unknown"),
        (ParkingSensor.occupied.is_(True), "occupied"),
        else_="free",
    )


def reserved_between(starts_at: datetime, ends_at: datetime) -> Any:
    """The ids of spaces held, booked or in use for part of ``[starts_at, ends_at)``."""
    return select(Reservation.space_id).where(
        Reservation.status.in_(BLOCKING_STATUSES),
        Reservation.starts_at < ends_at,
        Reservation.ends_at > starts_at,
    )


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def window(starts_at: datetime | None, ends_at: datetime | None) -> tuple[datetime, datetime]:
    """The asked window; from now for an hour when not given."""
    start = starts_at or utcnow()
    end = ends_at or start + timedelta(hours=1)
    if end <= start:
        raise InvalidInput(
            _l("The end must be after the start."), field="ends_at", location="query"
        )
    return start, end


def availability(
    lat: float,
    lon: float,
    radius_m: int,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """Lots within ``radius_m`` of the point, nearest first, with free spaces and a quote.

    The same question asked again within ``PARKING_AVAILABILITY_CACHE_SECONDS`` gets the same
    answer from this process's memory (a hot spot asked by many phones at once costs one query
    per second, and the answer is at most that old)."""
    start, end = window(starts_at, ends_at)
    ttl = float(current_app.config["PARKING_AVAILABILITY_CACHE_SECONDS"])
    if ttl <= 0:
        return _availability(lat, lon, radius_m, start, end, kind)
    key = (round(lat, 5), round(lon, 5), radius_m, starts_at, ends_at, kind)
    cache: dict[Any, tuple[float, list[dict[str, Any]]]] = current_app.extensions.setdefault(
        "parking_availability_cache", {}
    )
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    found = _availability(lat, lon, radius_m, start, end, kind)
    if len(cache) >= CACHE_ENTRIES:
        cache.clear()
    cache[key] = (now + ttl, found)
    return found


def _availability(
    lat: float, lon: float, radius_m: int, start: datetime, end: datetime, kind: str | None
) -> list[dict[str, Any]]:
    nearby = _lots_within(lat, lon, radius_m)
    if not nearby:
        return []
    counts = _counts([lot.id for lot, _ in nearby], start, end, kind)
    tariffs = {
        t.lot_id: t
        for t in db.session.scalars(
            select(ParkingTariff).where(ParkingTariff.lot_id.in_([lot.id for lot, _ in nearby]))
        )
    }
    db.end_read_transaction()
    found = []
    for lot, distance in nearby:
        total, free_now, free_in_window = counts.get(lot.id, (0, 0, 0))
        tariff = tariffs.get(lot.id)
        found.append(
            {
                "lot_id": lot.id,
                "name": lot.name,
                "address": lot.address,
                "lat": lot.lat,
                "lon": lot.lon,
                "distance_m": round(distance),
                "total_spaces": total,
                "free_now": free_now,
                "free_in_window": free_in_window,
                "quote": (
                    {"amount": quote(tariff, start, end), "currency": tariff.currency}
                    if tariff
                    else None
                ),
            }
        )
    return found


def _lots_within(lat: float, lon: float, radius_m: int) -> list[tuple[Any, float]]:
    dlat = radius_m / METRES_PER_DEGREE
    dlon = radius_m / (METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 0.01))
    rows = db.session.execute(
        select(ParkingLot.id, ParkingLot.name, ParkingLot.address, ParkingLot.lat, ParkingLot.lon)
        .where(ParkingLot.lat.between(lat - dlat, lat + dlat))
        .where(ParkingLot.lon.between(lon - dlon, lon + dlon))
    ).all()
    measured = [(row, haversine_m(lat, lon, row.lat, row.lon)) for row in rows]
    inside = sorted((pair for pair in measured if pair[1] <= radius_m), key=lambda p: p[1])
    return inside[:MAX_LOTS]


def _counts(
    lot_ids: list[str], start: datetime, end: datetime, kind: str | None
) -> dict[str, tuple[int, int, int]]:
    now = utcnow()
    free_now = and_(
        status_of(now) == "free",
        ParkingSpace.id.not_in(reserved_between(now, now + timedelta(seconds=1))),
    )
    free_in_window = and_(
        ParkingSpace.closed.is_(False), ParkingSpace.id.not_in(reserved_between(start, end))
    )
    query = (
        select(
            ParkingSpace.lot_id,
            func.count(),
            func.sum(case((free_now, 1), else_=0)),
            func.sum(case((free_in_window, 1), else_=0)),
        )
        .outerjoin(
            ParkingSensor,
            # the lot filter on the sensors lets PostgreSQL read them through their lot index
            and_(ParkingSensor.space_id == ParkingSpace.id, ParkingSensor.lot_id.in_(lot_ids)),
        )
        .where(ParkingSpace.lot_id.in_(lot_ids))
        .group_by(ParkingSpace.lot_id)
    )
    if kind:
        query = query.where(ParkingSpace.kind == kind)
    return {
        row[0]: (int(row[1]), int(row[2] or 0), int(row[3] or 0))
        for row in db.session.execute(query)
    }


def lot_spaces(lot_id: str) -> list[dict[str, Any]]:
    """Every space of a lot with its status and whether a reservation holds it now."""
    if db.session.get(ParkingLot, lot_id) is None:
        raise NotFound(_l("No such parking lot."))
    now = utcnow()
    reserved_now = ParkingSpace.id.in_(reserved_between(now, now + timedelta(seconds=1)))
    rows = db.session.execute(
        select(
            ParkingSpace.id,
            ParkingSpace.code,
            ParkingSpace.kind,
            ParkingSpace.lat,
            ParkingSpace.lon,
            ParkingSpace.closed,
            status_of(now).label("status"),
            reserved_now.label("reserved_now"),
            ParkingSensor.device_id,
            ParkingSensor.observed_at,
            ParkingSensor.last_seen_at,
        )
        .outerjoin(
            ParkingSensor,
            and_(ParkingSensor.space_id == ParkingSpace.id, ParkingSensor.lot_id == lot_id),
        )
        .where(ParkingSpace.lot_id == lot_id)
        .order_by(ParkingSpace.code)
    ).all()
    return [dict(row._mapping) for row in rows]
