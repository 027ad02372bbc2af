"""The MQTT side of sensor ingestion (paho-mqtt 2): an adapter that knows no database.

:class:`Subscriber` keeps ``connections`` sessions to the broker (``MQTT_URL``), each subscribed
with QoS 1 to ``{prefix}/parking/+/state`` and The Things Stack's ``v3/+/devices/+/up``, inside a
shared subscription ``$share/{group}/…`` when a group is set, so that several connections and
several ingest processes split the stream. Messages are queued as they arrive and handed over in
batches: when ``batch_size`` have arrived, when none has arrived for a few milliseconds (a broker
lets only a few unacknowledged messages be in flight per connection — 20 by default in
Mosquitto — so waiting longer would only add latency), or after ``flush_ms`` at most.

A message is acknowledged (``manual_ack``) only after the batch handler returned, that is after
its batch has committed; a handler that fails leaves the batch unacknowledged and is retried, and
a crash leaves it with the broker, which delivers it again to the resumed session
(``clean_session=False``). paho reconnects by itself and subscriptions are renewed on every
connect.
"""

import json
import logging
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from parking.events import Event, as_utc
from parking.ttn import NotAnUplink, decode_uplink

log = logging.getLogger("civic.parking.mqtt")
IDLE_FLUSH_SECONDS = 0.004
RETRY_SECONDS = 1.0
TTN_TOPIC = "v3/+/devices/+/up"


@dataclass(frozen=True)
class Settings:
    url: str = "mqtt://127.0.0.1:1883"
    topic_prefix: str = "city"
    shared_group: str = "ingest"
    client_id: str = "parking-ingest"
    connections: int = 4
    batch_size: int = 1000
    flush_ms: int = 200

    @classmethod
    def from_config(cls, config: Any) -> "Settings":
        return cls(
            url=config["MQTT_URL"],
            topic_prefix=config["MQTT_TOPIC_PREFIX"],
            shared_group=config["MQTT_SHARED_GROUP"],
            client_id=config["MQTT_CLIENT_ID"],
            # Without a shared group every connection would receive every message.
            connections=max(1, int(config["MQTT_CONNECTIONS"]))
            if config["MQTT_SHARED_GROUP"]
            else 1,
            batch_size=max(1, int(config["MQTT_BATCH_SIZE"])),
            flush_ms=max(1, int(config["MQTT_FLUSH_MS"])),
        )

    def topics(self) -> list[str]:
        plain = [state_topic(self.topic_prefix, "+"), TTN_TOPIC]
        if not self.shared_group:
            return plain
        return [f"$share/{self.shared_group}/{topic}" for topic in plain]


@dataclass(frozen=True)
class Received:
    """One message as it came, with what is needed to acknowledge it later."""

    client: mqtt.Client
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: datetime


def state_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/parking/{device_id}/state"


def broker_address(url: str) -> tuple[str, int, str | None, str | None, bool]:
    """Host, port, username, password and TLS from ``mqtt://[user:pass@]host[:port]``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"MQTT_URL must be mqtt://host:port, got {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    port = parts.port or (8883 if tls else 1883)
    return parts.hostname or "127.0.0.1", port, parts.username, parts.password, tls


def decode(topic: str, payload: bytes, received_at: datetime, prefix: str) -> tuple[str, Event]:
    """The source (``mqtt`` or ``ttn``) and event of a message; ValueError when unreadable."""
    if topic.startswith("v3/") and topic.endswith("/up"):
        try:
            return "ttn", decode_uplink(json.loads(payload), received_at)
        except (NotAnUplink, ValueError) as error:
            raise ValueError(str(error)) from None
    head, _, rest = topic.partition("/parking/")
    device_id, _, tail = rest.partition("/")
    if head != prefix or tail != "state" or not device_id:
        raise ValueError(f"not a state topic: {topic}")
    body = json.loads(payload)
    occupied = body.get("occupied") if isinstance(body, dict) else None
    if not isinstance(occupied, bool):
        raise ValueError("occupied must be true or false")
    stamp = body.get("observed_at")
    observed_at = as_utc(datetime.fromisoformat(stamp)) if isinstance(stamp, str) else received_at
    return "mqtt", Event(device_id, occupied, observed_at, received_at)


class Subscriber:
    """Connections to the broker, a queue, and a batching loop that acknowledges after commit."""

    def __init__(self, settings: Settings, on_batch: Callable[[list[Received]], None]) -> None:
        self.settings = settings
        self._on_batch = on_batch
        self._queue: queue.Queue[Received] = queue.Queue()
        self._clients: list[mqtt.Client] = []
        self._subscribed = threading.Semaphore(0)

    def start(self) -> None:
        """Connect every session (in the background; paho reconnects by itself)."""
        host, port, username, password, tls = broker_address(self.settings.url)
        for index in range(self.settings.connections):
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=f"{self.settings.client_id}-{index}",
                clean_session=False,
                protocol=mqtt.MQTTv311,
                manual_ack=True,
            )
            if username:
                client.username_pw_set(username, password)
            if tls:
                client.tls_set()
            client.reconnect_delay_set(min_delay=1, max_delay=30)
            client.on_connect = self._on_connect
            client.on_subscribe = self._on_subscribe
            client.on_message = self._on_message
            client.on_disconnect = self._on_disconnect
            client.connect_async(host, port, keepalive=30)
            client.loop_start()
            self._clients.append(client)

    def wait_until_subscribed(self, timeout: float = 10.0) -> bool:
        """True once every connection has its subscriptions granted (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        for _ in self._clients:
            if not self._subscribed.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return False
        return True

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _p: Any
    ) -> None:
        if reason.is_failure:
            log.error("mqtt connect refused", extra={"reason": str(reason)})
            return
        client.subscribe([(topic, 1) for topic in self.settings.topics()])
        log.info(
            "mqtt connected",
            extra={"client_id": client._client_id.decode(), "topics": self.settings.topics()},
        )

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, codes: Any, _p: Any
    ) -> None:
        if any(code.is_failure for code in codes):
            log.error("mqtt subscription refused", extra={"codes": [str(c) for c in codes]})
        self._subscribed.release()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _p: Any
    ) -> None:
        log.warning("mqtt disconnected; reconnecting", extra={"reason": str(reason)})

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._queue.put(
            Received(
                client,
                message.mid,
                message.qos,
                message.topic,
                bytes(message.payload),
                datetime.now(UTC),
            )
        )

    def run(self, stop: threading.Event) -> None:
        """Hand over batches until ``stop`` is set (then the last batch is flushed)."""
        while not stop.is_set():
            batch = self._next_batch(stop)
            while batch and not self._flush(batch):
                if stop.wait(RETRY_SECONDS):
                    return  # unacknowledged: the broker keeps them for the next session

    def _next_batch(self, stop: threading.Event) -> list[Received]:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.settings.flush_ms / 1000
        while len(batch) < self.settings.batch_size and not stop.is_set():
            wait = min(IDLE_FLUSH_SECONDS, deadline - time.monotonic())
            if wait <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=wait))
            except queue.Empty:
                break  # the stream paused: flush now rather than hold the in-flight window
        return batch

    def _flush(self, batch: list[Received]) -> bool:
        try:
            self._on_batch(batch)
        except Exception:
            log.exception("ingest batch failed; it stays unacknowledged and is retried")
            return False
        for received in batch:
            received.client.ack(received.mid, received.qos)
        return True

    def stop(self) -> None:
        for client in self._clients:
            client.disconnect()
            client.loop_stop()
        self._clients.clear()
