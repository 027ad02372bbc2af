"""Sensor events in, in batches, from every source (HTTP, The Things Stack, MQTT).

The rules, whatever the source:

- an unknown device, one of another operator than the gateway's, or an observation more than
  ``FUTURE_TOLERANCE`` ahead of our clock is **rejected**: counted, never applied or stored;
- the same observation twice (same sensor, same ``observed_at``) is a **duplicate**: ignored;
- an observation not newer than the space's state is **stale**: kept in the history, not applied;
- anything else is **applied**: it becomes the space's state;
- any accepted message (heartbeats too) moves the sensor's ``last_seen_at``.

One batch is a handful of set-based statements in one transaction: read the sensors, insert the
history (ON CONFLICT DO NOTHING finds duplicates), update ``last_seen_at``, then update the state
with a guard (``observed_at < new``) so that concurrent ingest processes, which a shared MQTT
subscription feeds in any order, can never move a space back to an older state. On PostgreSQL
each of those is one statement of constant shape whatever the batch size (arrays through
``unnest`` and ``= ANY``), so the server plans it once; SQLite gets the portable forms.
"""

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import String, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import OperationalError

from core import db
from core.clock import utcnow
from parking.events import Event, as_utc
from parking.models import IngestCount, ParkingSensor, SensorEvent
from parking.service.operators import gateway_operator
from parking.ttn import NotAnUplink, decode_uplink

log = logging.getLogger("civic.parking.ingest")
FUTURE_TOLERANCE = timedelta(minutes=5)
OUTCOMES = ("applied", "duplicate", "stale", "rejected", "heartbeat")


def ingest(
    events: Sequence[Event], source: str, *, operator_id: str | None = None, malformed: int = 0
) -> dict[str, int]:
    """Apply one batch and commit; returns the count of each outcome.

    ``operator_id`` (a gateway's operator) restricts the batch to that operator's sensors;
    ``malformed`` counts messages the caller could not even parse (rejected).
    """
    for attempt in range(3):
        try:
            return _ingest_once(events, source, operator_id, malformed)
        except OperationalError as error:  # a deadlock between ingest processes: try again
            db.session.rollback()
            if attempt == 2 or "deadlock" not in str(error).lower():
                raise
            log.warning("ingest batch deadlocked; retrying", extra={"events": len(events)})
    raise AssertionError("unreachable")


def _ingest_once(
    events: Sequence[Event], source: str, operator_id: str | None, malformed: int
) -> dict[str, int]:
    now = utcnow()
    counts: Counter[str] = Counter(rejected=malformed)
    sensors = _sensors_of({e.device_id for e in events})
    accepted: list[tuple[Any, Event]] = []
    for event in events:
        sensor = sensors.get(event.device_id)
        foreign = (
            operator_id is not None and sensor is not None and sensor.operator_id != operator_id
        )
        if sensor is None or foreign or event.observed_at > now + FUTURE_TOLERANCE:
            counts["rejected"] += 1
        else:
            accepted.append((sensor, event))
    latest = _record_history(accepted, source, counts)
    touched = sorted({sensor.id for sensor, _ in accepted})
    if db.is_postgresql():
        _touch_and_apply_postgresql(touched, latest, now)
    else:
        _touch(touched, now)
        _apply(latest)
    newest = max((e.observed_at for _, e in accepted), default=None)
    lag_ms = int((utcnow() - newest).total_seconds() * 1000) if newest else None
    _count(source, counts, lag_ms)
    db.session.commit()
    return {outcome: counts[outcome] for outcome in OUTCOMES}


def _one_of(column: Any, values: list[str]) -> Any:
    """``column IN values``; on PostgreSQL ``= ANY(array)``, one statement for any length."""
    if db.is_postgresql():
        return column == func.any(bindparam(f"any_{column.key}", values, type_=ARRAY(String)))
    return column.in_(values)


class _Known(NamedTuple):
    id: str
    operator_id: str
    observed_at: datetime | None


def _pg_cursor() -> Any:
    """A psycopg cursor on the session's own connection (inside its transaction): the hot
    statements send their arrays in binary, which psycopg dumps in C."""
    return db.session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]


def _sensors_of(device_ids: Iterable[str]) -> dict[str, Any]:
    ids = list(device_ids)
    if not ids:
        return {}
    if db.is_postgresql():
        with _pg_cursor() as cursor:
            cursor.execute(
                "SELECT device_id, id, operator_id, observed_at FROM parking_sensors "
                "WHERE device_id = ANY(%b::text[])",
                (ids,),
                binary=True,
            )
            return {row[0]: _Known(row[1], row[2], row[3]) for row in cursor.fetchall()}
    rows = db.session.execute(
        select(
            ParkingSensor.id,
            ParkingSensor.device_id,
            ParkingSensor.operator_id,
            ParkingSensor.observed_at,
        ).where(_one_of(ParkingSensor.device_id, ids))
    )
    return {row.device_id: row for row in rows}


def _record_history(
    accepted: list[tuple[Any, Event]], source: str, counts: Counter[str]
) -> dict[str, Event]:
    """Insert the observations; count duplicates, stale ones and applied ones; return the
    newest applicable observation per sensor."""
    keys: set[tuple[str, datetime]] = set()
    candidates: list[tuple[Any, Event]] = []
    for sensor, event in accepted:
        if event.occupied is None:
            counts["heartbeat"] += 1
            continue
        key = (sensor.id, event.observed_at)
        if key in keys:
            counts["duplicate"] += 1
            continue
        keys.add(key)
        candidates.append((sensor, event))
    inserted = _insert_history(candidates, source)
    latest: dict[str, Event] = {}
    for sensor, event in candidates:
        if (sensor.id, event.observed_at) not in inserted:
            counts["duplicate"] += 1
        elif sensor.observed_at is not None and event.observed_at <= sensor.observed_at:
            counts["stale"] += 1
        else:
            counts["applied"] += 1
            newest = latest.get(sensor.id)
            if newest is None or event.observed_at > newest.observed_at:
                latest[sensor.id] = event
    return latest


_PG_HISTORY = (
    "INSERT INTO parking_sensor_events (sensor_id, occupied, observed_at, received_at, source) "
    "SELECT v.*, %s FROM unnest(%b::text[], %b::boolean[], %b::timestamptz[], "
    "%b::timestamptz[]) AS v ON CONFLICT (sensor_id, observed_at) DO NOTHING "
    "RETURNING sensor_id, observed_at"
)
# One statement for every sensor heard from: last_seen_at for all, the state where the batch
# holds a newer observation (v.observed_at NULL: only seen). SET reads the row as it was.
_NEWER = "(v.observed_at IS NOT NULL AND (s.observed_at IS NULL OR s.observed_at < v.observed_at))"
_PG_TOUCH_AND_STATE = (
    "UPDATE parking_sensors AS s SET last_seen_at = %s, "  # noqa: S608 - constant SQL, values bound
    f"occupied = CASE WHEN {_NEWER} THEN v.occupied ELSE s.occupied END, "
    f"observed_at = CASE WHEN {_NEWER} THEN v.observed_at ELSE s.observed_at END, "
    f"changed_at = CASE WHEN {_NEWER} AND s.occupied IS DISTINCT FROM v.occupied "
    "THEN v.observed_at ELSE s.changed_at END "
    "FROM unnest(%b::text[], %b::boolean[], %b::timestamptz[]) AS v(id, occupied, observed_at) "
    "WHERE s.id = v.id"
)


def _insert_history(candidates: list[tuple[Any, Event]], source: str) -> set[tuple[str, datetime]]:
    if not candidates:
        return set()
    if db.is_postgresql():
        columns = (
            [sensor.id for sensor, _ in candidates],
            [event.occupied for _, event in candidates],
            [event.observed_at for _, event in candidates],
            [event.received_at for _, event in candidates],
        )
        with _pg_cursor() as cursor:
            cursor.execute(_PG_HISTORY, (source, *columns), binary=True)
            # aware datetimes hash by their instant, whatever the session's timezone
            return {(row[0], row[1]) for row in cursor.fetchall()}
    rows = [
        {
            "sensor_id": sensor.id,
            "occupied": event.occupied,
            "observed_at": event.observed_at,
            "received_at": event.received_at,
            "source": source,
        }
        for sensor, event in candidates
    ]
    table = SensorEvent.__table__
    statement = (
        db.insert(table)
        .on_conflict_do_nothing(index_elements=["sensor_id", "observed_at"])
        .returning(table.c.sensor_id, table.c.observed_at)
    )
    result = db.session.execute(statement, rows)
    return {(row.sensor_id, as_utc(row.observed_at)) for row in result}


def _touch(sensor_ids: list[str], now: datetime) -> None:
    """Every sensor heard from is alive (locks rows in id order: no deadlock between batches)."""
    if sensor_ids:
        db.session.execute(
            update(ParkingSensor)
            .where(_one_of(ParkingSensor.id, sensor_ids))
            .values(last_seen_at=now)
        )


def _touch_and_apply_postgresql(
    sensor_ids: list[str], latest: dict[str, Event], now: datetime
) -> None:
    if not sensor_ids:
        return
    newest = [latest.get(sensor_id) for sensor_id in sensor_ids]
    with _pg_cursor() as cursor:
        cursor.execute(
            _PG_TOUCH_AND_STATE,
            (
                now,
                sensor_ids,
                [event.occupied if event else None for event in newest],
                [event.observed_at if event else None for event in newest],
            ),
            binary=True,
        )


def _apply(latest: dict[str, Event]) -> None:
    if not latest:
        return
    table: Any = ParkingSensor.__table__
    statement = (
        update(table)
        .where(
            and_(
                table.c.id == bindparam("b_id"),
                or_(table.c.observed_at.is_(None), table.c.observed_at < bindparam("b_obs")),
            )
        )
        .values(
            occupied=bindparam("b_occ"),
            observed_at=bindparam("b_obs"),
            # evaluated against the row before this update, on both backends
            changed_at=case(
                (table.c.occupied.is_distinct_from(bindparam("b_occ")), bindparam("b_obs")),
                else_=table.c.changed_at,
            ),
        )
    )
    params = [
        {"b_id": sensor_id, "b_occ": event.occupied, "b_obs": event.observed_at}
        for sensor_id, event in sorted(latest.items())
    ]
    db.session.execute(statement, params)


def _count(source: str, counts: Counter[str], lag_ms: int | None) -> None:
    """Add this batch to the shared counters (one upsert per outcome seen)."""
    rows = [
        {
            "source": source,
            "outcome": outcome,
            "events": n,
            "last_lag_ms": lag_ms,
            "updated_at": utcnow(),
        }
        for outcome, n in sorted(counts.items())
        if n
    ]
    if not rows:
        return
    table = IngestCount.__table__
    insert = db.insert(table)
    statement = insert.on_conflict_do_update(
        index_elements=["source", "outcome"],
        set_={
            "events": table.c.events + insert.excluded.events,
            "last_lag_ms": insert.excluded.last_lag_ms,
            "updated_at": insert.excluded.updated_at,
        },
    )
    db.session.execute(statement, rows)


def receive_events(api_key: str | None, items: list[dict[str, Any]]) -> dict[str, int]:
    """HTTP: a gateway's batch; only its operator's sensors are applied."""
    operator_id = gateway_operator(api_key)
    now = utcnow()
    events = [
        Event(item["device_id"], item["occupied"], as_utc(item["observed_at"]), now)
        for item in items
    ]
    return ingest(events, "http", operator_id=operator_id)


def receive_uplink(api_key: str | None, body: Any) -> dict[str, int]:
    """HTTP: a The Things Stack webhook uplink; a message we cannot read counts as rejected."""
    operator_id = gateway_operator(api_key)
    try:
        event = decode_uplink(body, utcnow())
    except NotAnUplink:
        return ingest([], "ttn", operator_id=operator_id, malformed=1)
    return ingest([event], "ttn", operator_id=operator_id)


def receive_messages(decoded: Sequence[tuple[str, Event]], malformed: int = 0) -> dict[str, int]:
    """MQTT: a batch of decoded messages (``(source, event)``), one commit per source; MQTT
    trusts the broker's ACL for who may publish on which topic, so no operator check here."""
    totals: Counter[str] = Counter()
    by_source: dict[str, list[Event]] = {}
    for source, event in decoded:
        by_source.setdefault(source, []).append(event)
    if malformed and not by_source:
        by_source["mqtt"] = []
    for index, (source, events) in enumerate(sorted(by_source.items())):
        totals.update(ingest(events, source, malformed=malformed if index == 0 else 0))
    return {outcome: totals[outcome] for outcome in OUTCOMES}


def ingest_counts() -> list[IngestCount]:
    """The shared counters (``/metrics``)."""
    return list(db.session.scalars(select(IngestCount).order_by(IngestCount.source)))
