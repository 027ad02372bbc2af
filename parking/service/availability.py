"""Where a citizen can park: lots around a point with their free spaces and a price, and the
status of every space (``free``, ``occupied``, ``closed``, ``unknown``).

A space's status comes from its sensor's materialised state: ``unknown`` without a sensor, before
its first report, or once the sensor has been silent for ``PARKING_SENSOR_OFFLINE_SECONDS``.
Availability costs three set-based statements whatever the number of spaces, in autocommit: the
lots inside the bounding box of the circle (an index on lat/lon) with their tariffs, one grouped
count over their spaces joined to their sensors, and the reservations of those lots that meet
the window (an index on lot and start; usually none, and only then a look at their spaces); the
exact haversine distance is computed for the few lots in the box. An answer is remembered for
``PARKING_AVAILABILITY_CACHE_SECONDS``, and forgotten as soon as this process writes a
reservation.
"""

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import ColumnElement, Connection, and_, bindparam, case, event, func, or_, select
from sqlalchemy.orm import Session, object_session

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
_CACHE = "parking_availability_cache"
_FLIGHTS = "parking_availability_flights"
_FLIGHTS_LOCK = threading.Lock()
FLIGHT_WAIT_SECONDS = 5.0
_RESERVATIONS_WRITTEN = "parking_reservations_written"


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


Counts = tuple[int, int, int]  # spaces, free now, free in the window

# The reservations of some lots that meet a span of time (the lot and start index serves it),
# built once: building this statement cost about as much as running it.
_RESERVED = select(Reservation.space_id, Reservation.starts_at, Reservation.ends_at).where(
    Reservation.lot_id.in_(bindparam("lot_ids", expanding=True)),
    Reservation.status.in_(BLOCKING_STATUSES),
    Reservation.starts_at < bindparam("until", type_=Reservation.starts_at.type),
    Reservation.ends_at > bindparam("since", type_=Reservation.ends_at.type),
)


def availability(
    lat: float,
    lon: float,
    radius_m: int,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    kind: str | None = None,
) -> str:
    """Lots within ``radius_m`` of the point, nearest first, with free spaces and a quote: the
    JSON text of a list shaped like ``AvailabilitySchema`` (compact, as ``jsonify`` writes it).

    The same question asked again within ``PARKING_AVAILABILITY_CACHE_SECONDS`` gets the same
    answer from this process's memory (a hot spot asked by many phones at once costs one count
    per second, and the answer is at most that old), unless a reservation was written through
    this process since: that forgets every remembered answer. It is remembered as text, so a
    remembered answer costs neither a query nor a serialisation."""
    start, end = window(starts_at, ends_at)
    key = (round(lat, 5), round(lon, 5), radius_m, starts_at, ends_at, kind)
    return _remembered(key, lambda: _as_json(_fresh(lat, lon, radius_m, start, end, kind)))


def _as_json(found: list[dict[str, Any]]) -> str:
    return current_app.json.dumps(found, separators=(",", ":")) + "\n"  # as jsonify writes it


def _fresh(
    lat: float, lon: float, radius_m: int, start: datetime, end: datetime, kind: str | None
) -> list[dict[str, Any]]:
    # It only reads, each statement on its own (no transaction round trips around them).
    with db.read_only_connection() as connection:
        sensed = _sensed(connection, lat, lon, radius_m, start, end, kind)
        if not sensed:
            return []
        lot_ids = [lot["lot_id"] for lot in sensed]
        taken = _taken(connection, lot_ids, utcnow(), start, end, kind)
    for lot in sensed:
        lost_now, lost_in_window = taken.get(lot["lot_id"], (0, 0))
        lot["free_now"] = max(0, lot["free_now"] - lost_now)
        lot["free_in_window"] = max(0, lot["free_in_window"] - lost_in_window)
    return sensed


class _Flight:
    """One thread computing an answer; the others asking the same question wait for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: str | None = None


def _remembered(key: Any, compute: Callable[[], str]) -> str:
    ttl = float(current_app.config["PARKING_AVAILABILITY_CACHE_SECONDS"])
    if ttl <= 0:
        return compute()
    cache: dict[Any, tuple[float, str]] = current_app.extensions.setdefault(_CACHE, {})
    now = time.monotonic()
    hit = cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    # When an answer expires, the threads asking for it at that moment would all count at once
    # (measured: p99 in hundreds of ms); one counts, the others keep answering with the expired
    # answer meanwhile (older than the setting by one count's time at most), or wait for the
    # new one when there is none (the first question, or a reservation made them forgotten).
    flights: dict[Any, _Flight] = current_app.extensions.setdefault(_FLIGHTS, {})
    with _FLIGHTS_LOCK:
        flight = flights.get(key)
        mine = flight is None
        if flight is None:
            flight = flights[key] = _Flight()
    if not mine:
        if hit is not None:
            return hit[1]
        flight.done.wait(FLIGHT_WAIT_SECONDS)
        return flight.answer if flight.answer is not None else compute()
    try:
        flight.answer = compute()
        if len(cache) >= CACHE_ENTRIES:
            cache.clear()
        cache[key] = (now + ttl, flight.answer)
        return flight.answer
    finally:
        with _FLIGHTS_LOCK:
            flights.pop(key, None)
        flight.done.set()


def forget_answers() -> None:
    """Forget this process's remembered answers (a reservation changed)."""
    if has_app_context():
        current_app.extensions.pop(_CACHE, None)
        current_app.extensions.pop(_FLIGHTS, None)  # askers from now on count afresh


@event.listens_for(Reservation, "after_insert")
@event.listens_for(Reservation, "after_update")
@event.listens_for(Reservation, "after_delete")
def _reservation_written(_mapper: Any, _connection: Any, reservation: Reservation) -> None:
    session = object_session(reservation)
    if session is not None:
        session.info[_RESERVATIONS_WRITTEN] = True


@event.listens_for(Session, "after_commit")
def _forget_after_reservations(session: Session) -> None:
    if session.info.pop(_RESERVATIONS_WRITTEN, False):
        forget_answers()


def _sensed(
    connection: Connection,
    lat: float,
    lon: float,
    radius_m: int,
    start: datetime,
    end: datetime,
    kind: str | None,
) -> list[dict[str, Any]]:
    """The lots around the point with their spaces counted as if nothing were reserved:
    ``free_now`` is what the sensors say is free, ``free_in_window`` what is not closed."""
    nearby = _lots_within(connection, lat, lon, radius_m)
    if not nearby:
        return []
    counts = _sensor_counts(connection, [lot.id for lot, _ in nearby], utcnow(), kind)
    found = []
    for lot, distance in nearby:
        total, free, open_ = counts.get(lot.id, (0, 0, 0))
        found.append(
            {
                "lot_id": lot.id,
                "name": lot.name,
                "address": lot.address,
                "lat": lot.lat,
                "lon": lot.lon,
                "distance_m": round(distance),
                "total_spaces": total,
                "free_now": free,
                "free_in_window": open_,
                "quote": _quote(lot, start, end),
            }
        )
    return found


def _quote(lot: Any, start: datetime, end: datetime) -> dict[str, Any] | None:
    """The price of the window under the lot's tariff (its columns ride on the lot's row)."""
    if lot.unit_minutes is None:
        return None
    tariff = ParkingTariff(
        free_minutes=lot.free_minutes,
        unit_minutes=lot.unit_minutes,
        unit_price=lot.unit_price,
        daily_max=lot.daily_max,
        currency=lot.currency,
        periods=lot.periods,
    )
    return {"amount": quote(tariff, start, end), "currency": lot.currency}


def _lots_within(
    connection: Connection, lat: float, lon: float, radius_m: int
) -> list[tuple[Any, float]]:
    """The lots within the circle with their tariff's columns (None without one), nearest
    first."""
    dlat = radius_m / METRES_PER_DEGREE
    dlon = radius_m / (METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 0.01))
    rows = connection.execute(
        select(
            ParkingLot.id,
            ParkingLot.name,
            ParkingLot.address,
            ParkingLot.lat,
            ParkingLot.lon,
            ParkingTariff.free_minutes,
            ParkingTariff.unit_minutes,
            ParkingTariff.unit_price,
            ParkingTariff.daily_max,
            ParkingTariff.currency,
            ParkingTariff.periods,
        )
        .outerjoin(ParkingTariff, ParkingTariff.lot_id == ParkingLot.id)
        .where(ParkingLot.lat.between(lat - dlat, lat + dlat))
        .where(ParkingLot.lon.between(lon - dlon, lon + dlon))
    ).all()
    measured = [(row, haversine_m(lat, lon, row.lat, row.lon)) for row in rows]
    inside = sorted((pair for pair in measured if pair[1] <= radius_m), key=lambda p: p[1])
    return inside[:MAX_LOTS]


def _sensor_counts(
    connection: Connection, lot_ids: list[str], now: datetime, kind: str | None
) -> dict[str, Counts]:
    """Per lot: its spaces (of ``kind``), those whose sensor says free, those not closed."""
    query = (
        select(
            ParkingSpace.lot_id,
            func.count(),
            func.sum(case((status_of(now) == "free", 1), else_=0)),
            func.sum(case((ParkingSpace.closed.is_(False), 1), else_=0)),
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
        for row in connection.execute(query)
    }


def _taken(
    connection: Connection,
    lot_ids: list[str],
    now: datetime,
    start: datetime,
    end: datetime,
    kind: str | None,
) -> dict[str, tuple[int, int]]:
    """Per lot, the spaces (of ``kind``) that reservations take out of the sensors' counts:
    free by their sensor but reserved now, and not closed but reserved in the window. One
    indexed query that usually finds nothing; the reserved spaces' states only when it does."""
    now_end = now + timedelta(seconds=1)
    reservations = connection.execute(
        _RESERVED, {"lot_ids": lot_ids, "until": max(end, now_end), "since": min(start, now)}
    ).all()
    if not reservations:
        return {}
    query = (
        select(
            ParkingSpace.id,
            ParkingSpace.lot_id,
            ParkingSpace.closed,
            status_of(now).label("status"),
        )
        .outerjoin(ParkingSensor, ParkingSensor.space_id == ParkingSpace.id)
        .where(ParkingSpace.id.in_({row.space_id for row in reservations}))
    )
    if kind:
        query = query.where(ParkingSpace.kind == kind)
    spaces = {row.id: row for row in connection.execute(query)}
    reserved_now: dict[str, set[str]] = {}
    reserved_in_window: dict[str, set[str]] = {}
    for row in reservations:
        space = spaces.get(row.space_id)
        if space is None:  # of another kind
            continue
        if space.status == "free" and row.starts_at < now_end and row.ends_at > now:
            reserved_now.setdefault(space.lot_id, set()).add(space.id)
        if not space.closed and row.starts_at < end and row.ends_at > start:
            reserved_in_window.setdefault(space.lot_id, set()).add(space.id)
    return {
        lot_id: (len(reserved_now.get(lot_id, ())), len(reserved_in_window.get(lot_id, ())))
        for lot_id in reserved_now.keys() | reserved_in_window.keys()
    }


def _counts(
    lot_ids: list[str], start: datetime, end: datetime, kind: str | None
) -> dict[str, Counts]:
    """Per lot: its spaces (of ``kind``), those free now and those free in the window, afresh."""
    now = utcnow()
    with db.read_only_connection() as connection:
        sensed = _sensor_counts(connection, lot_ids, now, kind)
        taken = _taken(connection, lot_ids, now, start, end, kind)
    counts = {}
    for lot_id, (total, free, open_) in sensed.items():
        lost_now, lost_in_window = taken.get(lot_id, (0, 0))
        counts[lot_id] = (total, max(0, free - lost_now), max(0, open_ - lost_in_window))
    return counts


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
