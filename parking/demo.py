"""Demo data: a lot of ``Demo Parking Co`` by Seoul City Hall, with spaces, sensors, a tariff and
a gateway key; and the simulator's lot (``flask parking simulate``)."""

from sqlalchemy import select

from core import db
from core.auth import service as auth
from core.auth.models import Organisation
from core.auth.principal import Principal
from parking.models import ParkingGateway, ParkingLot, ParkingSensor, ParkingSpace
from parking.service import operators

DEMO_OPERATOR = "Demo Parking Co"
DEMO_LOT = "Demo Lot - Seoul City Hall"
SIMULATED_LOT = "Simulated Lot - Gwanghwamun"
DEMO_SPACES = [(f"A{n:02d}", "car") for n in range(1, 17)] + [
    ("E01", "ev"),
    ("E02", "ev"),
    ("D01", "disabled"),
    ("M01", "motorcycle"),
]
DEMO_TARIFF = {
    "free_minutes": 10,
    "unit_minutes": 10,
    "unit_price": 1000,
    "daily_max": 30000,
    "currency": "KRW",
}


def operator() -> Principal:
    """The demo operator as a caller (created if missing)."""
    organisation = db.session.scalar(select(Organisation).where(Organisation.name == DEMO_OPERATOR))
    if organisation is None:
        organisation = auth.create_organisation(DEMO_OPERATOR, "parking_operator")
    return Principal(
        kind="organisation", id=organisation.id, name=organisation.name, role=organisation.kind
    )


def seed() -> list[str]:
    """The demo lot (idempotent); a fresh demo gateway key each time (the old one revoked)."""
    caller = operator()
    lot = ensure_lot(
        caller, DEMO_LOT, 37.5663, 126.9779, "110 Sejong-daero, Jung-gu, Seoul", DEMO_SPACES, "demo"
    )
    for gateway in db.session.scalars(
        select(ParkingGateway).where(
            ParkingGateway.operator_id == caller.id,
            ParkingGateway.name == "demo",
            ParkingGateway.revoked_at.is_(None),
        )
    ).all():
        operators.revoke_gateway(caller, gateway.id)
    issued = operators.create_gateway(caller, "demo")
    return [
        f"parking lot        {DEMO_LOT}: {lot.id} ({len(DEMO_SPACES)} spaces, sensors demo-a01..)",
        f"parking gateway    X-API-Key {issued['api_key']}",
    ]


def ensure_lot(
    caller: Principal,
    name: str,
    lat: float,
    lon: float,
    address: str,
    spaces: list[tuple[str, str]],
    device_prefix: str,
) -> ParkingLot:
    """The operator's lot of that name with these spaces, a sensor on each, and the demo tariff."""
    lot = db.session.scalar(
        select(ParkingLot).where(ParkingLot.operator_id == caller.id, ParkingLot.name == name)
    )
    if lot is None:
        lot = operators.create_lot(
            caller,
            {
                "name": name,
                "address": address,
                "lat": lat,
                "lon": lon,
                "opening_hours": "Mo-Su 00:00-24:00",
                "features": ["cctv", "ev_charging"],
            },
        )
        operators.set_tariff(caller, lot.id, DEMO_TARIFF)
    existing = set(
        db.session.scalars(select(ParkingSpace.code).where(ParkingSpace.lot_id == lot.id))
    )
    missing = [(code, kind) for code, kind in spaces if code not in existing]
    for start in range(0, len(missing), operators.MAX_BATCH):
        chunk = missing[start : start + operators.MAX_BATCH]
        created = operators.create_spaces(
            caller, lot.id, [{"code": code, "kind": kind} for code, kind in chunk]
        )
        sensors = [
            {"device_id": f"{device_prefix}-{space.code.lower()}", "space_id": space.id}
            for space in created
        ]
        operators.create_sensors(caller, sensors)
    return lot


def simulated_devices(count: int) -> list[str]:
    """The simulator's lot with ``count`` sensors (``sim-00001``…); returns their device ids."""
    caller = operator()
    spaces = [(f"S{n:05d}", "car") for n in range(1, count + 1)]
    lot = ensure_lot(
        caller,
        SIMULATED_LOT,
        37.5759,
        126.9768,
        "172 Sejong-daero, Jongno-gu, Seoul",
        spaces,
        "sim",
    )
    db.session.commit()
    return list(
        db.session.scalars(
            select(ParkingSensor.device_id)
            .join(ParkingSpace, ParkingSpace.id == ParkingSensor.space_id)
            .where(ParkingSpace.lot_id == lot.id)
            .order_by(ParkingSensor.device_id)
            .limit(count)
        )
    )
