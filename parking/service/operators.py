"""What a parking operator manages: lots, spaces, tariffs, sensors and gateway keys.

Everything is scoped to the calling operator (another operator's object is 404) and every
change writes an audit row in the same transaction.
"""

import hashlib
import hmac
import secrets
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core import db
from core.audit import service as audit
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import Conflict, InvalidInput, NotFound
from core.i18n import _l
from core.money import SUPPORTED
from parking.errors import GatewayKeyInvalid
from parking.models import (
    ParkingGateway,
    ParkingLot,
    ParkingSensor,
    ParkingSpace,
    ParkingTariff,
)
from parking.service.pricing import tariff_view

GATEWAY_KEY_PREFIX = "pgw"
LOT_FIELDS = ("name", "address", "lat", "lon", "opening_hours", "features")
SPACE_FIELDS = ("code", "kind", "lat", "lon", "closed")
MAX_BATCH = 1000


def _at_most_a_thousand(items: list[dict[str, Any]]) -> None:
    if not 1 <= len(items) <= MAX_BATCH:
        raise InvalidInput(_l("Give 1 to 1,000 items at once."), field="_schema")


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def lot_view(lot: ParkingLot) -> dict[str, Any]:
    return {field: getattr(lot, field) for field in LOT_FIELDS}


# --- lots ----------------------------------------------------------------------------------


def create_lot(operator: Principal, data: dict[str, Any]) -> ParkingLot:
    """A new lot of the operator."""
    lot = ParkingLot(operator_id=operator.id, **{k: data.get(k) for k in LOT_FIELDS})
    db.session.add(lot)
    db.session.flush()
    audit.record(operator, "parking.lot_created", "parking_lot", lot.id, after=lot_view(lot))
    db.session.commit()
    return lot


def list_lots(operator: Principal) -> list[ParkingLot]:
    query = select(ParkingLot).where(ParkingLot.operator_id == operator.id)
    return list(db.session.scalars(query.order_by(ParkingLot.name, ParkingLot.id)))


def get_lot(operator: Principal, lot_id: str) -> ParkingLot:
    """The operator's lot; another operator's is 404, not 403."""
    lot = db.session.get(ParkingLot, lot_id)
    if lot is None or lot.operator_id != operator.id:
        raise NotFound(_l("No such parking lot."))
    return lot


def update_lot(operator: Principal, lot_id: str, data: dict[str, Any]) -> ParkingLot:
    lot = get_lot(operator, lot_id)
    before = lot_view(lot)
    for field in LOT_FIELDS:
        if field in data:
            setattr(lot, field, data[field])
    lot.updated_at = utcnow()
    audit.record(
        operator, "parking.lot_updated", "parking_lot", lot.id, before=before, after=lot_view(lot)
    )
    db.session.commit()
    return lot


# --- spaces --------------------------------------------------------------------------------


def space_view(space: ParkingSpace) -> dict[str, Any]:
    return {field: getattr(space, field) for field in SPACE_FIELDS}


def create_spaces(
    operator: Principal, lot_id: str, items: list[dict[str, Any]]
) -> list[ParkingSpace]:
    """Add up to 1,000 spaces at once; a code already used in the lot is 409 and adds none."""
    lot = get_lot(operator, lot_id)
    _at_most_a_thousand(items)
    codes = [item["code"] for item in items]
    if len(set(codes)) != len(codes):
        raise InvalidInput(_l("Space codes must be unique within a lot."), field="code")
    spaces = [
        ParkingSpace(
            lot_id=lot.id,
            code=item["code"],
            kind=item.get("kind", "car"),
            lat=item.get("lat"),
            lon=item.get("lon"),
            closed=False,
        )
        for item in items
    ]
    db.session.add_all(spaces)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            _l("A space with this code already exists in the lot."), field="code"
        ) from None
    audit.record(operator, "parking.spaces_created", "parking_lot", lot.id, after={"codes": codes})
    db.session.commit()
    return spaces


def get_space(operator: Principal, space_id: str) -> ParkingSpace:
    space = db.session.get(ParkingSpace, space_id)
    lot = db.session.get(ParkingLot, space.lot_id) if space is not None else None
    if space is None or lot is None or lot.operator_id != operator.id:
        raise NotFound(_l("No such parking space."))
    return space


def update_space(operator: Principal, space_id: str, data: dict[str, Any]) -> ParkingSpace:
    """Change a space (``closed: true`` takes it out of service)."""
    space = get_space(operator, space_id)
    before = space_view(space)
    for field in SPACE_FIELDS:
        if field in data:
            setattr(space, field, data[field])
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            _l("A space with this code already exists in the lot."), field="code"
        ) from None
    audit.record(
        operator,
        "parking.space_updated",
        "parking_space",
        space.id,
        before=before,
        after=space_view(space),
    )
    db.session.commit()
    return space


# --- tariffs -------------------------------------------------------------------------------


def set_tariff(operator: Principal, lot_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Replace the lot's tariff."""
    lot = get_lot(operator, lot_id)
    currency = data["currency"].upper()
    if currency not in SUPPORTED:
        raise InvalidInput(_l("This currency is not supported."), field="currency")
    tariff = db.session.get(ParkingTariff, lot.id)
    before = tariff_view(tariff)
    if tariff is None:
        tariff = ParkingTariff(lot_id=lot.id)
        db.session.add(tariff)
    tariff.free_minutes = data.get("free_minutes", 0)
    tariff.unit_minutes = data["unit_minutes"]
    tariff.unit_price = data["unit_price"]
    tariff.daily_max = data.get("daily_max")
    tariff.currency = currency
    tariff.periods = data.get("periods") or None
    tariff.updated_at = utcnow()
    after = tariff_view(tariff) or {}
    audit.record(operator, "parking.tariff_set", "parking_lot", lot.id, before=before, after=after)
    db.session.commit()
    return after | {"lot_id": lot.id}


def get_tariff(operator: Principal, lot_id: str) -> dict[str, Any]:
    lot = get_lot(operator, lot_id)
    view = tariff_view(db.session.get(ParkingTariff, lot.id))
    if view is None:
        raise NotFound(_l("This lot has no tariff yet."))
    return view | {"lot_id": lot.id}


# --- sensors -------------------------------------------------------------------------------


def create_sensors(operator: Principal, items: list[dict[str, Any]]) -> list[ParkingSensor]:
    """Put sensors on the operator's spaces: one per space, device ids unique."""
    _at_most_a_thousand(items)
    space_ids = {item["space_id"] for item in items}
    rows = db.session.execute(
        select(ParkingSpace.id, ParkingSpace.lot_id)
        .join(ParkingLot, ParkingLot.id == ParkingSpace.lot_id)
        .where(ParkingSpace.id.in_(space_ids), ParkingLot.operator_id == operator.id)
    )
    owned = {space_id: lot_id for space_id, lot_id in rows}
    if set(owned) != space_ids:
        raise InvalidInput(_l("No such parking space."), field="space_id")
    devices = [item["device_id"] for item in items]
    if len(set(devices)) != len(devices) or len(space_ids) != len(items):
        raise InvalidInput(_l("Each device and each space may appear once."), field="device_id")
    sensors = [
        ParkingSensor(
            device_id=item["device_id"],
            space_id=item["space_id"],
            lot_id=owned[item["space_id"]],
            operator_id=operator.id,
        )
        for item in items
    ]
    db.session.add_all(sensors)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            _l("A device is already registered, or a space already has a sensor."),
            field="device_id",
        ) from None
    audit.record(
        operator, "parking.sensors_created", "organisation", operator.id, after={"devices": devices}
    )
    db.session.commit()
    return sensors


def list_sensors(operator: Principal) -> list[ParkingSensor]:
    query = select(ParkingSensor).where(ParkingSensor.operator_id == operator.id)
    return list(db.session.scalars(query.order_by(ParkingSensor.device_id)))


def remove_sensor(operator: Principal, sensor_id: str) -> None:
    sensor = db.session.get(ParkingSensor, sensor_id)
    if sensor is None or sensor.operator_id != operator.id:
        raise NotFound(_l("No such sensor."))
    audit.record(
        operator,
        "parking.sensor_removed",
        "parking_sensor",
        sensor.id,
        before={"device_id": sensor.device_id, "space_id": sensor.space_id},
    )
    db.session.delete(sensor)
    db.session.commit()


# --- gateways ------------------------------------------------------------------------------


def create_gateway(operator: Principal, name: str) -> dict[str, Any]:
    """A gateway key for the operator's sensors: returned once, stored as a SHA-256 hash."""
    prefix = secrets.token_hex(6)
    secret = f"{GATEWAY_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    gateway = ParkingGateway(
        operator_id=operator.id, name=name, prefix=prefix, key_hash=_sha256(secret)
    )
    db.session.add(gateway)
    db.session.flush()
    audit.record(
        operator,
        "parking.gateway_created",
        "parking_gateway",
        gateway.id,
        after={"name": name, "prefix": prefix},
    )
    db.session.commit()
    return {"id": gateway.id, "name": name, "api_key": secret, "created_at": gateway.created_at}


def list_gateways(operator: Principal) -> list[ParkingGateway]:
    query = select(ParkingGateway).where(ParkingGateway.operator_id == operator.id)
    return list(db.session.scalars(query.order_by(ParkingGateway.created_at)))


def revoke_gateway(operator: Principal, gateway_id: str) -> ParkingGateway:
    """Revoke a gateway key now; revoking twice is harmless."""
    gateway = db.session.get(ParkingGateway, gateway_id)
    if gateway is None or gateway.operator_id != operator.id:
        raise NotFound(_l("No such gateway."))
    if gateway.revoked_at is None:
        gateway.revoked_at = utcnow()
        audit.record(
            operator,
            "parking.gateway_revoked",
            "parking_gateway",
            gateway.id,
            before={"revoked": False},
            after={"revoked": True},
        )
        db.session.commit()
    return gateway


def gateway_operator(presented: str | None) -> str:
    """The operator id behind a gateway key, in one indexed query (by prefix); 401 otherwise."""
    parts = (presented or "").strip().split("_", 2)
    if len(parts) != 3 or parts[0] != GATEWAY_KEY_PREFIX:
        raise GatewayKeyInvalid()
    row = db.session.execute(
        select(
            ParkingGateway.key_hash, ParkingGateway.operator_id, ParkingGateway.revoked_at
        ).where(ParkingGateway.prefix == parts[1])
    ).one_or_none()
    if row is None or not hmac.compare_digest(row.key_hash, _sha256(presented.strip())):  # type: ignore[union-attr]
        raise GatewayKeyInvalid()
    if row.revoked_at is not None:
        raise GatewayKeyInvalid(_l("Gateway key has been revoked."))
    return str(row.operator_id)


def offline_after_seconds() -> int:
    return int(current_app.config["PARKING_SENSOR_OFFLINE_SECONDS"])


def count_spaces(lot_id: str) -> int:
    query = select(func.count()).where(ParkingSpace.lot_id == lot_id)
    return int(db.session.scalar(query) or 0)
