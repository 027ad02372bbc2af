"""The MQTT ingest worker against a real broker: Mosquitto when ``MQTT_TEST_URL`` is set (CI),
otherwise the embedded amqtt. Every run uses its own topic prefix, client ids and shared group,
so runs sharing one broker do not meet."""

import os
from datetime import UTC, datetime

import pytest

from parking.cli import make_subscriber
from parking.mqtt import Received, state_topic
from parking.ttn import encode_uplink
from tests.parking.conftest import RUN, P, wait_for


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
    wait_for(lambda: _statuses(client, lot)[:2] == ["occupied", "free"])
    metrics = client.request("GET", "/metrics", 200).get_data(as_text=True)
    assert 'parking_sensor_events_total{outcome="applied",source="mqtt"} 2.0' in metrics
    wait_for(
        lambda: (
            'outcome="rejected",source="mqtt"} 2.0'
            in client.request("GET", "/metrics", 200).get_data(as_text=True)
        )
    )


def test_ttn_uplinks_on_mqtt_are_applied(client, lot, start_worker, publish):
    start_worker()
    uplink = encode_uplink(lot.devices[0], True, datetime.now(UTC), application=f"app-{RUN}")
    publish(f"v3/app-{RUN}@ttn/devices/{lot.devices[0]}/up", uplink)
    wait_for(lambda: _statuses(client, lot)[0] == "occupied")


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
    first._on_batch = failing  # the commit fails
    worker = start_worker(first)
    prefix = mqtt_config["MQTT_TOPIC_PREFIX"]
    publish(state_topic(prefix, lot.devices[0]), {"occupied": True, "observed_at": _now()})
    wait_for(lambda: bool(failed))
    worker.stop()
    assert _statuses(client, lot)[0] == "unknown"
    start_worker()  # same client ids: the same persistent sessions
    wait_for(lambda: _statuses(client, lot)[0] == "occupied", timeout=20)
