"""The MQTT ingest worker against a real broker: Mosquitto when ``MQTT_TEST_URL`` is set (CI),
otherwise the embedded amqtt. Every run uses its own topic prefix, client ids and shared group,
so runs sharing one broker do not meet."""

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devtools.mqtt_broker import EmbeddedBroker
from parking.cli import make_subscriber
from parking.mqtt import Received, Subscriber, broker_address, state_topic
from parking.ttn import encode_uplink
from tests.parking.conftest import P

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
        assert self.subscriber.wait_until_subscribed(10), "subscriptions not granted"
        self.thread.start()
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


def _wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _statuses(client, lot) -> list[str]:
    return [space["status"] for space in client.get(f"{P}/lots/{lot.id}/spaces")]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def test_state_messages_on_mqtt_become_the_spaces_state(
    client, lot, mqtt_config, start_worker, publish
):
    start_worker()
    prefix = mqtt_config["MQTT_TOPIC_PREFIX"]
    publish(state_topic(prefix, lot.devices[0]), {"occupied": True, "observed_at": _now()})
    publish(state_topic(prefix, lot.devices[1]), {"occupied": False, "observed_at": _now()})
    publish(state_topic(prefix, "unknown-device"), {"occupied": True, "observed_at": _now()})
    publish(state_topic(prefix, lot.devices[2]), b"not json")
    _wait_for(lambda: _statuses(client, lot)[:2] == ["occupied", "free"])
    metrics = client.request("GET", "/metrics", 200).get_data(as_text=True)
    assert 'parking_sensor_events_total{outcome="applied",source="mqtt"} 2.0' in metrics
    _wait_for(
        lambda: 'outcome="rejected",source="mqtt"} 2.0'
        in client.request("GET", "/metrics", 200).get_data(as_text=True)
    )


def test_ttn_uplinks_on_mqtt_are_applied(client, lot, start_worker, publish):
    start_worker()
    uplink = encode_uplink(lot.devices[0], True, datetime.now(UTC), application=f"app-{RUN}")
    publish(f"v3/app-{RUN}@ttn/devices/{lot.devices[0]}/up", uplink)
    _wait_for(lambda: _statuses(client, lot)[0] == "occupied")


@pytest.mark.skipif(
    not os.environ.get("MQTT_TEST_URL"),
    reason="amqtt does not redeliver unacknowledged messages to a resumed session; Mosquitto does",
)
def test_a_batch_that_did_not_commit_is_not_acknowledged_and_is_delivered_again(
    app, client, lot, mqtt_config, start_worker, publish
):
    """Nothing acknowledged is lost: the first worker's commit fails, it goes away without
    acknowledging, and the broker hands the message to the resumed session."""
    failed: list[int] = []

    def failing(batch: list[Received]) -> None:
        failed.append(len(batch))
        raise RuntimeError("database unavailable")

    first = make_subscriber(app)
    first._on_batch = failing  # noqa: SLF001 - the commit fails
    worker = start_worker(first)
    prefix = mqtt_config["MQTT_TOPIC_PREFIX"]
    publish(state_topic(prefix, lot.devices[0]), {"occupied": True, "observed_at": _now()})
    _wait_for(lambda: bool(failed))
    worker.stop()
    assert _statuses(client, lot)[0] == "unknown"
    start_worker()  # same client ids: the same persistent sessions
    _wait_for(lambda: _statuses(client, lot)[0] == "occupied", timeout=20)
