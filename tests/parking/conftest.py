"""Fixtures of the parking tests: an operator with a lot, spaces, sensors, a tariff and a
gateway key; a way to report sensor events; a citizen with a saved card."""

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.clock import utcnow
from devtools.mqtt_broker import EmbeddedBroker
from parking.cli import make_subscriber
from parking.mqtt import Subscriber, broker_address
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


@pytest.fixture(autouse=True)
def _fresh_availability(app, monkeypatch):
    """Tests read availability right after a sensor event: no answer from memory."""
    monkeypatch.setitem(app.config, "PARKING_AVAILABILITY_CACHE_SECONDS", 0)


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


# --- MQTT: Mosquitto when MQTT_TEST_URL is set (CI), else the embedded amqtt ---------------

RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    url = os.environ.get("MQTT_TEST_URL")
    if url:
        yield url
        return
    with EmbeddedBroker() as broker:
        yield broker.url


@pytest.fixture
def mqtt_config(app, mqtt_url, monkeypatch) -> dict[str, object]:
    """Point the app at the test broker with names of its own."""
    test = uuid.uuid4().hex[:6]
    config = {
        "MQTT_URL": mqtt_url,
        "MQTT_TOPIC_PREFIX": f"test-{RUN}-{test}",
        # amqtt has no shared subscriptions; Mosquitto does
        "MQTT_SHARED_GROUP": f"ingest-{RUN}-{test}" if os.environ.get("MQTT_TEST_URL") else "",
        "MQTT_CLIENT_ID": f"ingest-{RUN}-{test}",
        "MQTT_CONNECTIONS": 2,
        "MQTT_FLUSH_MS": 100,
    }
    for key, value in config.items():
        monkeypatch.setitem(app.config, key, value)
    return config


class Worker:
    def __init__(self, subscriber: Subscriber) -> None:
        self.subscriber = subscriber
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=subscriber.run, args=(self.stop_event,), daemon=True)

    def start(self) -> "Worker":
        self.subscriber.start()
        self.thread.start()
        assert self.subscriber.wait_until_subscribed(10), "subscriptions not granted"
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        self.subscriber.stop()


@pytest.fixture
def start_worker(app, mqtt_config) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(subscriber: Subscriber | None = None) -> Worker:
        worker = Worker(subscriber or make_subscriber(app)).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def publish(mqtt_url) -> Iterator[Callable[[str, object], None]]:
    host, port, *_ = broker_address(mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect(host, port)
    client.loop_start()

    def send(topic: str, body: object) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        client.publish(topic, payload, qos=1).wait_for_publish(5)

    yield send
    client.loop_stop()
    client.disconnect()


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
