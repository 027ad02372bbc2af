"""The MQTT side of sensor ingestion (paho-mqtt 2): an adapter that knows no database.

:class:`Subscriber` keeps ``connections`` sessions to the broker (``MQTT_URL``), each subscribed
with QoS 1 to ``{prefix}/parking/+/state`` and The Things Stack's ``v3/+/devices/+/up``, inside a
shared subscription ``$share/{group}/…`` when a group is set, so that several connections and
several ingest processes split the stream. Messages are collected as they arrive and handed over in
batches: when ``batch_size`` have arrived, when none has arrived for a few milliseconds (a broker
lets only a few unacknowledged messages be in flight per connection — 20 by default in
Mosquitto — so waiting longer would only add latency), or after ``flush_ms`` at most.

A message is acknowledged (``manual_ack``) only after the batch handler returned, that is after
its batch has committed; a handler that fails leaves the batch unacknowledged and is retried, and
a crash leaves it with the broker, which delivers it again to the resumed session
(``clean_session=False``). A dropped session is reconnected with a backoff and its subscriptions
are renewed on every connect. One thread drives every session through a selector and
acknowledges; a committer thread commits one batch while the next is being read.
"""

import contextlib
import json
import logging
import queue
import select
import selectors
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from parking.events import Event, as_utc
from parking.ttn import NotAnUplink, decode_uplink

log = logging.getLogger("civic.parking.mqtt")
IDLE_FLUSH_SECONDS = 0.004
RETRY_SECONDS = 1.0
REPORT_SECONDS = 10.0
TTN_TOPIC = "v3/+/devices/+/up"
PUBACK = 0x40
_PUBACK = struct.Struct("!BBH")


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

    client: "_Client"
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


def _no_delays(sock: Any) -> None:
    """Small packets go out at once (our acknowledgements), and our kernel acknowledges the
    broker's segments at once: with Nagle on the broker's side, a delayed TCP ACK (up to 40 ms
    on Linux) would otherwise stall every window of in-flight messages."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _quick_ack(sock)


def _quick_ack(sock: Any) -> None:
    # Linux turns quick-ack mode off again by itself, so it is re-armed after every read.
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


class _Client(mqtt.Client):
    """paho's client with two shortcuts for a stream of small messages (paho-mqtt 2.2 is pinned;
    both go through its internal ``_sock_recv`` and ``_packet_queue``):

    - it reads the socket 64 KiB at a time: paho asks for one packet's command byte, length
      bytes and body in separate ``recv`` calls, three system calls per message;
    - :meth:`ack_all` sends the PUBACKs of a batch in one write, in the order the messages came
      (``ack`` writes each one by itself).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        # (client, topic, mid, qos, payload) for each PUBLISH read by the short path
        self.on_received: Callable[[_Client, str, int, int, bytes], None] | None = None

    def _fill(self) -> None:
        """Read what the socket holds (BlockingIOError when nothing; empty when closed)."""
        self._rbuf, self._rpos = super()._sock_recv(65536), 0
        if self._rbuf:
            self._last_bytes_received = time.monotonic()  # keep-alive, as paho does

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            self._fill()
            if not self._rbuf:
                return b""  # closed
        end = self._rpos + bufsize
        chunk = self._rbuf[self._rpos : end]
        self._rpos = min(end, len(self._rbuf))
        return chunk

    def _packet_read(self) -> mqtt.MQTTErrorCode:
        """A QoS 0 or 1 PUBLISH (MQTT 3.1.1) that lies whole in the buffer is decoded here and
        handed to :attr:`on_received` (paho builds a message object, a condition variable and
        a topic matcher per message); anything else, or a packet that is not whole yet, goes
        through paho."""
        handler = self.on_received
        if handler is not None and self._rpos >= len(self._rbuf) and not self._in_packet["command"]:
            try:
                self._fill()
            except BlockingIOError:
                return mqtt.MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError:
                return super()._packet_read()  # paho reports it
        buf, pos = self._rbuf, self._rpos
        end = len(buf)
        if (
            handler is None
            or self._in_packet["command"] != 0
            or end - pos < 2
            or buf[pos] & 0xF6 not in (0x30, 0x32)  # PUBLISH, QoS 0 or 1 (any DUP, RETAIN)
            or self._protocol == mqtt.MQTTv5
        ):
            return super()._packet_read()
        length, shift, index = 0, 0, pos + 1
        while True:  # the remaining length, 1 to 4 bytes
            if index >= end or index > pos + 4:
                return super()._packet_read()
            byte = buf[index]
            length += (byte & 0x7F) << shift
            shift += 7
            index += 1
            if not byte & 0x80:
                break
        stop = index + length
        if stop > end or length < 2:
            return super()._packet_read()
        topic_end = index + 2 + (buf[index] << 8 | buf[index + 1])
        qos = (buf[pos] >> 1) & 3
        if topic_end + 2 * qos > stop:
            return super()._packet_read()  # malformed: let paho say so
        mid = buf[topic_end] << 8 | buf[topic_end + 1] if qos else 0
        self._rpos = stop
        handler(
            self,
            buf[index + 2 : topic_end].decode("utf-8", "replace"),
            mid,
            qos,
            buf[topic_end + 2 * qos : stop],
        )
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def buffered(self) -> bool:
        """True while bytes already read from the socket wait to be handled (the selector does
        not see them)."""
        return self._rpos < len(self._rbuf)

    def drop_buffer(self) -> None:
        """Forget what was read from a socket that is gone."""
        self._rbuf, self._rpos = b"", 0

    def ack_all(self, mids: list[int]) -> None:
        """PUBACK every QoS 1 message of ``mids`` (in this order) in one packet write."""
        if mids:
            packets = b"".join(_PUBACK.pack(PUBACK, 2, mid) for mid in mids)
            self._packet_queue(PUBACK, packets, 0, 0)


class Subscriber:
    """Sessions to the broker, all driven by one thread (no thread per connection: paho reads
    one packet per wake-up of its own loop, and many loop threads only fight over the GIL), with
    batching that acknowledges after commit."""

    def __init__(self, settings: Settings, on_batch: Callable[[list[Received]], None]) -> None:
        self.settings = settings
        self._on_batch = on_batch
        self._clients: list[_Client] = []
        self._selector = selectors.DefaultSelector()
        self._retry_at: dict[mqtt.Client, float] = {}
        self._backoff: dict[mqtt.Client, float] = {}
        self._connected_once: set[mqtt.Client] = set()
        self._subscribed = threading.Semaphore(0)
        self._batch: list[Received] = []
        self._first_arrival = self._last_arrival = 0.0
        self._report = {"messages": 0, "batches": 0, "flush_s": 0.0, "since": time.monotonic()}
        # One batch commits in the committer thread while the next one is read here.
        self._to_commit: queue.Queue[list[Received] | None] = queue.Queue(maxsize=1)
        self._committed: queue.Queue[tuple[list[Received], float]] = queue.Queue()
        self._committing = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

    def start(self) -> None:
        """Make the sessions; :meth:`run` connects them (and reconnects them when they drop)."""
        _, _, username, password, tls = broker_address(self.settings.url)
        for index in range(self.settings.connections):
            client = _Client(
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
            client.on_connect = self._on_connect
            client.on_subscribe = self._on_subscribe
            client.on_message = self._on_message
            client.on_received = self._on_received
            client.on_disconnect = self._on_disconnect
            client.on_socket_open = self._on_socket_open
            client.on_socket_close = self._on_socket_close
            self._clients.append(client)
            self._retry_at[client] = 0.0

    def wait_until_subscribed(self, timeout: float = 10.0) -> bool:
        """True once every session has its subscriptions granted (tests, benchmarks); needs
        :meth:`run` going in another thread."""
        deadline = time.monotonic() + timeout
        for _ in self._clients:
            if not self._subscribed.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return False
        return True

    # --- paho callbacks (all on the run thread) ---------------------------------------------

    def _on_socket_open(self, client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        cast(_Client, client).drop_buffer()
        _no_delays(sock)
        self._selector.register(sock, selectors.EVENT_READ, client)

    def _on_socket_close(self, client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        cast(_Client, client).drop_buffer()
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        self._schedule_reconnect(client)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("mqtt connect refused", extra={"reason": str(reason)})
            return
        self._backoff.pop(client, None)
        client.subscribe([(topic, 1) for topic in self.settings.topics()])
        log.info(
            "mqtt connected",
            extra={"client_id": client._client_id.decode(), "topics": self.settings.topics()},
        )

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        if any(code.is_failure for code in codes):
            log.error("mqtt subscription refused", extra={"codes": [str(c) for c in codes]})
        self._subscribed.release()

    def _on_disconnect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        log.warning("mqtt disconnected", extra={"reason": str(reason)})
        self._schedule_reconnect(client)

    def _on_received(self, client: _Client, topic: str, mid: int, qos: int, payload: bytes) -> None:
        now = time.monotonic()
        if not self._batch:
            self._first_arrival = now
        self._last_arrival = now
        self._batch.append(Received(client, mid, qos, topic, payload, datetime.now(UTC)))

    def _on_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if not self._batch:
            self._first_arrival = now
        self._last_arrival = now
        self._batch.append(
            Received(
                cast(_Client, client),
                message.mid,
                message.qos,
                message.topic,
                bytes(message.payload),
                datetime.now(UTC),
            )
        )

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Serve the sessions and hand over batches until ``stop`` is set.

        This thread owns the sessions (paho is not thread-safe): it reads, and it acknowledges a
        batch once the committer thread reports it committed. The committer holds one batch
        at a time, so the database and the network work at once and order is kept.
        """
        committer = threading.Thread(target=self._commit_loop, args=(stop,), daemon=True)
        committer.start()
        last_misc = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                self._reconnect_due(now)
                if self._committing and len(self._batch) >= self.settings.batch_size:
                    # full while the previous batch commits: read no more, wait for the commit
                    select.select([self._wake_r], [], [], 0.2)
                    ready = []
                else:
                    # bytes already read count as ready: the selector does not see them
                    buffered = [client for client in self._clients if client.buffered()]
                    ready = self._selector.select(0 if buffered else self._timeout(now))
                    for client in buffered:
                        self._read(client)
                for key, _mask in ready:
                    if key.data is None:
                        self._drain_wake()
                    else:
                        self._read(key.data)
                        _quick_ack(key.fileobj)
                self._acknowledge_committed()
                for client in self._clients:
                    if client.want_write():
                        client.loop_write()
                if now - last_misc >= 1.0:
                    for client in self._clients:
                        client.loop_misc()  # keep-alive pings, timeouts
                    last_misc = now
                if not self._committing and self._due(time.monotonic()):
                    self._committing = True
                    self._to_commit.put(self._batch)
                    self._batch = []
        finally:
            with contextlib.suppress(queue.Full):
                self._to_commit.put_nowait(None)
            committer.join(10)
            self._acknowledge_committed()

    def _commit_loop(self, stop: threading.Event) -> None:
        """Commit each batch handed over, retrying until it commits (or ``stop``)."""
        while True:
            batch = self._to_commit.get()
            if batch is None:
                return
            started = time.monotonic()
            while True:
                try:
                    self._on_batch(batch)
                    break
                except Exception:
                    log.exception("ingest batch failed; it stays unacknowledged and is retried")
                if stop.wait(RETRY_SECONDS):
                    return  # unacknowledged: the broker keeps them for the next session
            self._committed.put((batch, time.monotonic() - started))
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass

    def _acknowledge_committed(self) -> None:
        while True:
            try:
                batch, flush_s = self._committed.get_nowait()
            except queue.Empty:
                return
            mids: dict[_Client, list[int]] = {}
            for received in batch:
                if received.qos == 1:
                    mids.setdefault(received.client, []).append(received.mid)
            for client, client_mids in mids.items():
                client.ack_all(client_mids)
            self._committing = False
            self._account(len(batch), flush_s)

    def _read(self, client: _Client) -> None:
        """Read what the socket holds now (paho handles one packet per ``loop_read``)."""
        for _ in range(256):
            before = len(self._batch)
            if client.loop_read() != mqtt.MQTT_ERR_SUCCESS or len(self._batch) == before:
                return
            if len(self._batch) >= self.settings.batch_size:
                return

    def _timeout(self, now: float) -> float:
        if not self._batch or self._committing:
            return 0.2  # the committer wakes the selector when it is done
        deadline = min(
            self._last_arrival + IDLE_FLUSH_SECONDS,
            self._first_arrival + self.settings.flush_ms / 1000,
        )
        return max(0.0, deadline - now)

    def _due(self, now: float) -> bool:
        """Flush by size, when the stream pauses (a broker lets only a few unacknowledged
        messages be in flight per session: waiting longer would only add latency), or by age."""
        if not self._batch:
            return False
        return (
            len(self._batch) >= self.settings.batch_size
            or now - self._last_arrival >= IDLE_FLUSH_SECONDS
            or now - self._first_arrival >= self.settings.flush_ms / 1000
        )

    def _account(self, messages: int, flush_s: float) -> None:
        """One log line every ``REPORT_SECONDS``: messages, batches, time spent committing."""
        report = self._report
        report["messages"] += messages
        report["batches"] += 1
        report["flush_s"] += flush_s
        elapsed = time.monotonic() - report["since"]
        if elapsed >= REPORT_SECONDS:
            log.info(
                "ingested",
                extra={
                    "messages_per_s": round(report["messages"] / elapsed),
                    "avg_batch": round(report["messages"] / report["batches"]),
                    "avg_commit_ms": round(1000 * report["flush_s"] / report["batches"], 1),
                },
            )
            self._report = {"messages": 0, "batches": 0, "flush_s": 0.0, "since": time.monotonic()}

    def _reconnect_due(self, now: float) -> None:
        for client, at in list(self._retry_at.items()):
            if at > now:
                continue
            del self._retry_at[client]
            host, port, *_ = broker_address(self.settings.url)
            try:
                if client in self._connected_once:
                    client.reconnect()
                else:
                    client.connect(host, port, keepalive=30)
                    self._connected_once.add(client)
            except OSError as error:
                log.warning("mqtt broker unreachable; retrying", extra={"error": str(error)})
                self._schedule_reconnect(client)

    def _schedule_reconnect(self, client: mqtt.Client) -> None:
        if client not in self._clients or client in self._retry_at:
            return
        delay = min(self._backoff.get(client, 0.5) * 2, 30.0)
        self._backoff[client] = delay
        self._retry_at[client] = time.monotonic() + delay

    def stop(self) -> None:
        """Disconnect every session (whatever is unacknowledged stays with the broker)."""
        clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(Exception):
                client.disconnect()
        self._retry_at.clear()
        with contextlib.suppress(Exception):
            self._selector.close()
        for end in (self._wake_r, self._wake_w):
            end.close()
