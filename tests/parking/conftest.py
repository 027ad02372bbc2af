"""Fixtures of the parking tests: an operator with a lot, spaces, sensors, a tariff and a
gateway key; a way to report sensor events; a citizen with a saved card."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from core.clock import utcnow
from tests.conftest import ApiClient

P = "/api/v1/parking"
CITY_HALL = (37.5663, 126.9779)
TARIFF = {
    "free_minutes": 0,
    "unit_minutes": 10,
    "unit_price": 1000,
    "daily_max": 30000,
    "currency": "KRW",
}


@dataclass
class Operator:
    id: str
    api: ApiClient
    gateway_key: str = ""
    lots: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Lot:
    id: str
    spaces: list[dict[str, Any]]
    devices: list[str]
    operator: Operator

    def space(self, n: int) -> str:
        return self.spaces[n]["id"]


@pytest.fixture
def make_operator(client, make_organisation) -> Callable[[], Operator]:
    def make() -> Operator:
        organisation_id, key = make_organisation("parking_operator")
        api = client.as_api_key(key)
        gateway = api.post(f"{P}/gateways", {"name": "gw"}, expected=201)
        return Operator(organisation_id, api, gateway["api_key"])

    return make


@pytest.fixture
def operator(make_operator) -> Operator:
    return make_operator()


@pytest.fixture
def make_lot() -> Callable[..., Lot]:
    counter = iter(range(1, 10_000))

    def make(
        operator: Operator,
        spaces: int = 3,
        at: tuple[float, float] = CITY_HALL,
        tariff: dict[str, Any] | None = TARIFF,
        kinds: list[str] | None = None,
        name: str | None = None,
    ) -> Lot:
        n = next(counter)
        lot = operator.api.post(
            f"{P}/lots",
            {
                "name": name or f"Lot {n}",
                "address": f"{n} Sejong-daero",
                "lat": at[0],
                "lon": at[1],
            },
            expected=201,
        )
        items = [
            {"code": f"A{i:03d}", "kind": (kinds or ["car"] * spaces)[i]} for i in range(spaces)
        ]
        created = operator.api.post(f"{P}/lots/{lot['id']}/spaces", items, expected=201)
        devices = [f"dev-{lot['id'][:8]}-{i}" for i in range(spaces)]
        operator.api.post(
            f"{P}/sensors",
            [{"device_id": d, "space_id": s["id"]} for d, s in zip(devices, created, strict=True)],
            expected=201,
        )
        if tariff:
            operator.api.request("PUT", f"{P}/lots/{lot['id']}/tariff", 200, json=tariff)
        return Lot(lot["id"], created, devices, operator)

    return make


@pytest.fixture
def lot(operator, make_lot) -> Lot:
    return make_lot(operator)


@pytest.fixture
def report(client) -> Callable[..., dict[str, int]]:
    """``report(lot, {0: True, 2: False}, at=...)``: the lot's gateway reports those spaces."""

    def send(
        lot: Lot, states: dict[int, bool], at: datetime | None = None, expected: int = 200
    ) -> dict[str, int]:
        when = (at or utcnow()).isoformat()
        events = [
            {"device_id": lot.devices[i], "occupied": occupied, "observed_at": when}
            for i, occupied in states.items()
        ]
        return client.post(
            f"{P}/sensor-events",
            {"events": events},
            expected=expected,
            headers={"X-API-Key": lot.operator.gateway_key},
        )

    return send


def in_minutes(minutes: float) -> str:
    return (utcnow() + timedelta(minutes=minutes)).isoformat()
