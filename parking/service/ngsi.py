"""FIWARE NGSI-LD views of parking: ``ParkingSpot`` (one per space) and ``OffStreetParking``
(one per lot), after the Smart Data Models of the Parking domain.

Ids are ``urn:ngsi-ld:ParkingSpot:<space id>`` and ``urn:ngsi-ld:OffStreetParking:<lot id>``.
Key-values (``options=keyValues``) give plain values; the normalized form wraps each attribute
as a ``Property``, ``GeoProperty`` or ``Relationship``. Every entity carries its ``@context``.
"""

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select

from core import db
from core.clock import utcnow
from core.errors import BadRequest, NotFound
from core.i18n import _l
from parking.models import ParkingLot, ParkingSensor, ParkingSpace
from parking.service.availability import _counts, status_of

CONTEXT = [
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/context.jsonld",
]
SPOT, SITE = "ParkingSpot", "OffStreetParking"
TYPES = (SPOT, SITE)
_Q = re.compile(r'^\s*status\s*==\s*"?(free|occupied|closed|unknown)"?\s*$')


def urn(entity_type: str, object_id: str) -> str:
    return f"urn:ngsi-ld:{entity_type}:{object_id}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def entities(
    entity_type: str | None,
    q: str | None,
    limit: int,
    offset: int,
    key_values: bool,
    count: bool,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of entities of one type, and their total when ``count``."""
    if not entity_type:
        raise BadRequest(_l("Give the entity type."), field="type", location="query")
    if entity_type not in TYPES:
        return [], (0 if count else None)
    if entity_type == SITE:
        if q:
            raise BadRequest(_l("This query is not supported."), field="q", location="query")
        query = select(ParkingLot).order_by(ParkingLot.id)
        total = _total(query) if count else None
        lots = list(db.session.scalars(query.limit(limit).offset(offset)))
        return _sites(lots, key_values), total
    spots = _spots_query(q)
    total = _total(spots) if count else None
    rows = db.session.execute(spots.limit(limit).offset(offset)).all()
    return [_spot(row, key_values) for row in rows], total


def entity(entity_id: str, key_values: bool) -> dict[str, Any]:
    """One entity by its URN; 404 when there is none."""
    match = re.fullmatch(r"urn:ngsi-ld:(ParkingSpot|OffStreetParking):(.+)", entity_id)
    if match is None:
        raise NotFound(_l("No such entity."))
    entity_type, object_id = match.groups()
    if entity_type == SITE:
        lot = db.session.get(ParkingLot, object_id)
        if lot is None:
            raise NotFound(_l("No such entity."))
        return _sites([lot], key_values)[0]
    row = db.session.execute(_spots_query(None).where(ParkingSpace.id == object_id)).first()
    if row is None:
        raise NotFound(_l("No such entity."))
    return _spot(row, key_values)


def _total(query: Select[Any]) -> int:
    counted = select(func.count()).select_from(query.order_by(None).subquery())
    return int(db.session.scalar(counted) or 0)


def _spots_query(q: str | None) -> Select[Any]:
    status = status_of(utcnow())
    query = (
        select(
            ParkingSpace.id,
            ParkingSpace.code,
            ParkingSpace.lot_id,
            func.coalesce(ParkingSpace.lat, ParkingLot.lat).label("lat"),
            func.coalesce(ParkingSpace.lon, ParkingLot.lon).label("lon"),
            status.label("status"),
            ParkingSensor.device_id,
            ParkingSensor.observed_at,
        )
        .join(ParkingLot, ParkingLot.id == ParkingSpace.lot_id)
        .outerjoin(ParkingSensor, ParkingSensor.space_id == ParkingSpace.id)
        .order_by(ParkingSpace.id)
    )
    if q:
        match = _Q.match(q)
        if match is None:
            raise BadRequest(
                _l('Only q=status=="free" (or occupied, closed, unknown) is supported.'),
                field="q",
                location="query",
            )
        query = query.where(status == match.group(1))
    return query


def _spot(row: Any, key_values: bool) -> dict[str, Any]:
    location = {"type": "Point", "coordinates": [row.lon, row.lat]}
    site = urn(SITE, row.lot_id)
    devices = [urn("Device", row.device_id)] if row.device_id else None
    if key_values:
        body: dict[str, Any] = {
            "id": urn(SPOT, row.id),
            "type": SPOT,
            "name": row.code,
            "category": ["offStreet"],
            "status": row.status,
            "location": location,
            "refParkingSite": site,
        }
        if devices:
            body["refDevice"] = devices
        return body | {"@context": CONTEXT}
    status: dict[str, Any] = {"type": "Property", "value": row.status}
    if row.observed_at is not None:
        status["observedAt"] = _iso(row.observed_at)
    body = {
        "id": urn(SPOT, row.id),
        "type": SPOT,
        "name": {"type": "Property", "value": row.code},
        "category": {"type": "Property", "value": ["offStreet"]},
        "status": status,
        "location": {"type": "GeoProperty", "value": location},
        "refParkingSite": {"type": "Relationship", "object": site},
    }
    if devices:
        body["refDevice"] = {"type": "Relationship", "object": devices}
    return body | {"@context": CONTEXT}


def _sites(lots: list[ParkingLot], key_values: bool) -> list[dict[str, Any]]:
    now = utcnow()
    counts = (
        _counts([lot.id for lot in lots], now, now + timedelta(seconds=1), None) if lots else {}
    )
    return [_site(lot, *counts.get(lot.id, (0, 0, 0))[:2], key_values) for lot in lots]


def _site(lot: ParkingLot, total: int, available: int, key_values: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": lot.name,
        "address": {"streetAddress": lot.address},
        "category": ["parkingLot"],
        "totalSpotNumber": total,
        "availableSpotNumber": available,
    }
    location = {"type": "Point", "coordinates": [lot.lon, lot.lat]}
    body: dict[str, Any] = {"id": urn(SITE, lot.id), "type": SITE}
    if key_values:
        body |= values | {"location": location}
    else:
        body |= {k: {"type": "Property", "value": v} for k, v in values.items()}
        body["availableSpotNumber"]["observedAt"] = _iso(now_utc())
        body["location"] = {"type": "GeoProperty", "value": location}
    return body | {"@context": CONTEXT}


def now_utc() -> datetime:
    return utcnow()
