"""``flask parking ingest`` (the MQTT ingest worker) and ``flask parking simulate``."""

import json
import logging
import random
import signal
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import click
import paho.mqtt.client as mqtt
from flask import Flask, current_app
from flask.cli import AppGroup
from paho.mqtt.enums import CallbackAPIVersion

from core import db
from parking import demo
from parking.mqtt import Received, Settings, Subscriber, broker_address, decode, state_topic
from parking.service import ingest
from parking.ttn import encode_uplink

log = logging.getLogger("civic.parking.cli")
parking_cli = AppGroup("parking", help="Parking sensors: the MQTT ingest worker, a simulator.")


def batch_handler(app: Flask, prefix: str) -> Any:
    """Decode a batch and commit it (the subscriber acknowledges it afterwards)."""

    def handle(batch: list[Received]) -> None:
        decoded, malformed = [], 0
        for received in batch:
            try:
                decoded.append(
                    decode(received.topic, received.payload, received.received_at, prefix)
                )
            except ValueError:
                malformed += 1
        with app.app_context():
            try:
                ingest.receive_messages(decoded, malformed)
            finally:
                db.session.remove()

    return handle


def make_subscriber(app: Flask) -> Subscriber:
    settings = Settings.from_config(app.config)
    return Subscriber(settings, batch_handler(app, settings.topic_prefix))


@parking_cli.command("ingest")
def ingest_command() -> None:
    """Subscribe to the sensors' MQTT topics and write their events in batches (until SIGTERM)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    subscriber = make_subscriber(app)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    subscriber.start()
    click.echo(
        f"ingesting from {subscriber.settings.url}: {', '.join(subscriber.settings.topics())}"
    )
    try:
        subscriber.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        subscriber.stop()


@parking_cli.command("simulate")
@click.option("--sensors", default=100, show_default=True, help="How many sensors to drive.")
@click.option("--rate", default=50.0, show_default=True, help="Events per second.")
@click.option("--events", "total", type=int, help="How many events (default: 5 per sensor).")
@click.option("--ttn", is_flag=True, help="Publish The Things Stack uplinks instead.")
@click.option("--seed", type=int, help="Random seed, for a repeatable run.")
def simulate(sensors: int, rate: float, total: int | None, ttn: bool, seed: int | None) -> None:
    """Create a lot with N sensors if needed and publish realistic occupancy traffic to MQTT."""
    devices = demo.simulated_devices(sensors)
    prefix = current_app.config["MQTT_TOPIC_PREFIX"]
    client = _publisher(current_app.config["MQTT_URL"])
    rng = random.Random(seed)  # noqa: S311 - traffic, not secrets
    occupied = dict.fromkeys(devices, False)
    total = total or 5 * len(devices)
    started = time.monotonic()
    with click.progressbar(length=total, label=f"publishing to {len(devices)} sensors") as bar:
        for sent in range(total):
            device = devices[sent] if sent < len(devices) else rng.choice(devices)
            # Toward ~65% occupancy: a free space fills more often than a taken one empties.
            occupied[device] = rng.random() < 0.65 if sent < len(devices) else not occupied[device]
            topic, body = _message(prefix, device, occupied[device], ttn)
            client.publish(topic, body, qos=1)
            bar.update(1)
            delay = started + (sent + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    client.loop_stop()
    client.disconnect()
    taken = sum(occupied.values())
    click.echo(f"published {total} events; {taken} of {len(devices)} spaces left occupied")


def _message(prefix: str, device: str, occupied: bool, ttn: bool) -> tuple[str, str]:
    now = datetime.now(UTC)
    if ttn:
        return f"v3/parking@city/devices/{device}/up", json.dumps(
            encode_uplink(device, occupied, now)
        )
    return state_topic(prefix, device), json.dumps(
        {"occupied": occupied, "observed_at": now.isoformat()}
    )


def _publisher(url: str) -> mqtt.Client:
    host, port, username, password, tls = broker_address(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"parking-simulator-{uuid.uuid4().hex[:8]}"
    )
    if username:
        client.username_pw_set(username, password)
    if tls:
        client.tls_set()
    client.max_inflight_messages_set(200)
    try:
        client.connect(host, port, keepalive=30)
    except OSError as error:
        raise click.ClickException(f"no MQTT broker at {url}: {error}") from None
    client.loop_start()
    return client
