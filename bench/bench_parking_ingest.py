"""Sensor ingestion through MQTT into PostgreSQL, 50,000 sensors.

Targets (issue 8): at least 10,000 events/s sustained, at least 0.5 of a raw psycopg batched
upsert of the same rows measured in the same run, and p99 from publish to visible state under 1 s.

- **Baseline**: raw psycopg 3 (pipelined ``executemany``), batches of 1,000: insert the history
  rows (ON CONFLICT DO NOTHING) and update the sensors' state, for 100,000 events.
- **Publisher alone**: the publisher processes into the broker with nobody subscribed, to show
  what they can offer (they send pre-encoded QoS 1 PUBLISH packets on a plain socket and count
  the PUBACKs: a Python MQTT client would measure itself).
- **Ours**: ``flask parking ingest`` worker processes subscribed to Mosquitto (shared
  subscription, QoS 1, acknowledged after commit); once probes come through (the workers are
  subscribed), this script publishes 100,000 state messages and waits until every one is
  counted in ``parking_ingest_counts``, twice: unpaced (the **throughput** and the ratio to the
  baseline, which runs unpaced too), then paced at ``--rate`` (12,000/s, above the target) for
  the **latency**. It prints the workers' and Mosquitto's CPU time per event, steadier than
  rates on a busy machine.
- **Latency**: every 100 ms a probe message for a dedicated sensor carries its publish time as
  ``observed_at``; a watcher polls that sensor's state every few ms: visible - published. It
  means something only while the workers keep up with the publish rate: it is reported for the
  paced phase (unpaced, the probes wait behind the whole burst in the broker's queue).

Needs PostgreSQL (``BENCH_DATABASE_URL``, default the local server) and the ``mosquitto``
binary: the script runs its own Mosquitto on a free loopback port, configured as the README
recommends for ingestion (``max_inflight_messages 1000``, ``max_queued_messages 1000000``,
``set_tcp_nodelay true``): with Mosquitto's defaults (20 messages in flight per session, 1,000
queued) QoS 1 delivery stalls on round trips and drops what overflows the queue.
``--broker system`` uses ``BENCH_MQTT_URL`` (default mqtt://127.0.0.1:1883) as it is instead.
``python bench/bench_parking_ingest.py``.
"""

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from parking_bench_support import (
    MQTT_URL,
    ROOT,
    bulk_lots,
    database,
    free_port,
    migrated_app,
)

from bench import report

SENSORS = 50_000


def plain_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def baseline(url: str, devices: list[str], rounds: int, start: datetime) -> float:
    """Raw psycopg: the same rows (history + state), batched by 1,000; returns events/s."""
    events = [
        (device, (r + n) % 2 == 0, start + timedelta(seconds=r, microseconds=n))
        for r in range(rounds)
        for n, device in enumerate(devices)
    ]
    history = (
        "INSERT INTO parking_sensor_events (sensor_id, occupied, observed_at, received_at, source) "
        "SELECT id, %s, %s, now(), 'mqtt' FROM parking_sensors WHERE device_id = %s "
        "ON CONFLICT DO NOTHING"
    )
    state = (
        "UPDATE parking_sensors SET occupied = %s, observed_at = %s, last_seen_at = now() "
        "WHERE device_id = %s AND (observed_at IS NULL OR observed_at < %s)"
    )
    started = time.perf_counter()
    with psycopg.connect(plain_url(url)) as connection, connection.cursor() as cursor:
        for first in range(0, len(events), 1000):
            batch = events[first : first + 1000]
            cursor.executemany(history, [(occ, at, dev) for dev, occ, at in batch])
            cursor.executemany(state, [(occ, at, dev, at) for dev, occ, at in batch])
            connection.commit()
    rate = len(events) / (time.perf_counter() - started)
    # what the baseline left (dead row versions, stale statistics) must not slow the next run
    with psycopg.connect(plain_url(url), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE parking_sensors, parking_sensor_events")
    return rate


MOSQUITTO_CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1000
max_queued_messages 1000000
set_tcp_nodelay true
log_dest none
"""


def own_mosquitto(port: int) -> Any:
    """A Mosquitto for this run, tuned for ingestion; stopped by the caller."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = Path(tempfile.mkdtemp()) / "mosquitto.conf"
    conf.write_text(MOSQUITTO_CONF.format(port=port))
    process = subprocess.Popen([binary, "-c", str(conf)])
    time.sleep(0.5)
    return process


def start_workers(
    url: str, mqtt_url: str, prefix: str, workers: int, connections: int
) -> list[Any]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        MQTT_URL=mqtt_url,
        MQTT_TOPIC_PREFIX=prefix,
        MQTT_SHARED_GROUP=prefix,
        MQTT_CONNECTIONS=str(connections),
        LOG_LEVEL=os.environ.get("BENCH_WORKER_LOG_LEVEL", "WARNING"),
        FLASK_APP="app",
    )
    flask = str(Path(sys.executable).with_name("flask"))
    processes = []
    for index in range(workers):
        env["MQTT_CLIENT_ID"] = f"{prefix}-w{index}"
        command = [flask, "parking", "ingest"]
        if os.environ.get("BENCH_PROFILE_WORKER"):  # cProfile the first worker into this file
            command = [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                os.environ["BENCH_PROFILE_WORKER"],
                *command,
            ]
            os.environ.pop("BENCH_PROFILE_WORKER")
        processes.append(
            subprocess.Popen(command, env=dict(env), cwd=ROOT, stdout=subprocess.DEVNULL)
        )
    return processes


def counted(cursor: Any, probe: str) -> int:
    """MQTT messages counted by the workers, whatever their outcome, but the probes."""
    cursor.execute(
        "SELECT (SELECT coalesce(sum(events), 0) FROM parking_ingest_counts WHERE source='mqtt')"
        " - (SELECT count(*) FROM parking_sensor_events e JOIN parking_sensors s"
        " ON s.id = e.sensor_id WHERE s.device_id = %s)",
        (probe,),
    )
    return int(cursor.fetchone()[0])


class ProbeWatcher(threading.Thread):
    """Polls the probe sensor's state; records visible - published for each probe seen."""

    def __init__(self, url: str, device: str) -> None:
        super().__init__(daemon=True)
        self.url, self.device = url, device
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        last = None
        with psycopg.connect(plain_url(self.url), autocommit=True) as connection:
            while not self.stop.is_set():
                row = connection.execute(
                    "SELECT observed_at FROM parking_sensors WHERE device_id = %s", (self.device,)
                ).fetchone()
                observed = row[0] if row else None
                if observed is not None and observed != last and last is not None:
                    self.latencies.append((datetime.now(UTC) - observed).total_seconds())
                last = observed
                time.sleep(0.003)


def publisher(mqtt_url: str) -> mqtt.Client:
    """The probe's paho client. ``max_inflight_messages_set(0)`` (no limit): with a limit, paho
    2.2 walks every message in flight on each PUBACK (``_update_inflight``), which held a
    publisher of 5,000 in flight to about 700 messages/s."""
    host, port = mqtt_url.split("://")[1].split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    return client


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mqtt_string(value: bytes) -> bytes:
    return struct.pack("!H", len(value)) + value


def publish_packet(topic: str, payload: bytes, mid: int, qos: int) -> bytes:
    """An MQTT 3.1.1 PUBLISH packet."""
    body = _mqtt_string(topic.encode()) + (struct.pack("!H", mid) if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + _remaining_length(len(body)) + body


class RawPublisher:
    """A load generator that speaks just enough MQTT 3.1.1 to publish pre-encoded packets and
    count the broker's acknowledgements (PUBACK for QoS 1), with up to ``window`` unacknowledged
    (below 65,535: packet ids must stay unique while in flight). A Python MQTT client spends
    more CPU per message than the ingest worker does, so it would measure itself."""

    def __init__(self, host: str, port: int, window: int = 10_000) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client_id = f"bench-raw-{uuid.uuid4().hex[:8]}".encode()
        body = _mqtt_string(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60)
        body += _mqtt_string(client_id)
        self.sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
        connack = self.sock.recv(4)
        if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"broker refused the connection: {connack!r}")
        self.window, self.sent, self.acked, self._rest = window, 0, 0, b""

    def _read_acks(self, block: bool) -> None:
        self.sock.setblocking(block)
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        finally:
            self.sock.setblocking(True)
        if not data:
            raise ConnectionError("the broker closed the connection")
        data = self._rest + data
        whole = len(data) // 4 * 4
        if data[:whole:4].strip(b"\x40"):
            raise RuntimeError("expected only PUBACKs from the broker")
        self.acked += whole // 4
        self._rest = data[whole:]

    def send(self, packets: list[bytes], qos: int) -> None:
        while qos and self.sent - self.acked + len(packets) > self.window:
            self._read_acks(True)
        self.sock.sendall(b"".join(packets))
        self.sent += len(packets)
        if qos:
            self._read_acks(False)

    def finish(self, qos: int, timeout: float = 120) -> int:
        """Wait for every acknowledgement, disconnect; returns how many were acknowledged."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        while qos and self.acked < self.sent and time.monotonic() < deadline:
            self._read_acks(True)
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()
        return self.acked if qos else self.sent


def publish_slice(
    mqtt_url: str,
    prefix: str,
    devices: list[str],
    rounds: int,
    rate: float,
    offset: int,
    qos: int,
    ready: Any,
    done: Any,
) -> None:
    """One publisher process: encodes its share of the messages, waits for ``go``, then sends
    them at its share of the rate (0: as fast as the broker takes them) in runs of 100."""
    host, port = mqtt_url.split("://")[1].split(":")
    client = RawPublisher(host, int(port))
    base = datetime.now(UTC) + timedelta(microseconds=offset)
    packets = [
        publish_packet(
            f"{prefix}/parking/{device}/state",
            json.dumps(
                {
                    "occupied": (r + n) % 2 == 1,
                    "observed_at": (base + timedelta(seconds=r, microseconds=n)).isoformat(),
                }
            ).encode(),
            index % 65535 + 1,
            qos,
        )
        for index, (r, n, device) in enumerate(
            (r, n, device) for r in range(rounds) for n, device in enumerate(devices)
        )
    ]
    ready.wait()  # every publisher has encoded its messages
    started = time.monotonic()
    for first in range(0, len(packets), 100):
        client.send(packets[first : first + 100], qos)
        ahead = started + (first + 100) / rate - time.monotonic() if rate else 0
        if ahead > 0:
            time.sleep(ahead)
    acknowledged = client.finish(qos)
    done.put((acknowledged, time.monotonic() - started))


def publish_all(
    mqtt_url: str,
    prefix: str,
    devices: list[str],
    rounds: int,
    rate: float,
    processes: int,
    qos: int = 1,
) -> tuple[float, list[Any], Any]:
    """Start the publisher processes, let them encode, then start them together; returns the
    start time, the processes and the queue where each reports (acknowledged, seconds)."""
    share = [devices[i::processes] for i in range(processes)]
    ready = multiprocessing.Barrier(processes + 1)
    done: Any = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(
            target=publish_slice,
            args=(mqtt_url, prefix, share[i], rounds, rate / processes, i, qos, ready, done),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    ready.wait()
    return time.time(), workers, done


def probe_loop(client: mqtt.Client, prefix: str, probe: str, stop: threading.Event) -> None:
    """A probe every 100 ms: its observed_at is its publish time."""
    state = False
    while not stop.wait(0.1):
        state = not state
        body = {"occupied": state, "observed_at": datetime.now(UTC).isoformat()}
        client.publish(f"{prefix}/parking/{probe}/state", json.dumps(body), qos=1)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def publish_alone(mqtt_url: str, devices: list[str], args: argparse.Namespace) -> None:
    """The publishers into the broker with nobody subscribed: what they can offer."""
    total = args.rounds * len(devices)
    first, publishers, done = publish_all(
        mqtt_url,
        f"alone-{uuid.uuid4().hex[:6]}",
        devices,
        args.rounds,
        0,
        args.publishers,
        args.qos,
    )
    for process in publishers:
        process.join()
    acknowledged = sum(done.get()[0] for _ in publishers)
    print(
        f"publisher alone: {acknowledged} of {total} QoS {args.qos} messages acknowledged in "
        f"{time.time() - first:.1f} s by {args.publishers} processes, "
        f"{acknowledged / (time.time() - first):,.0f} messages/s (nobody subscribed), "
        f"load {os.getloadavg()[0]:.1f}"
    )


class Phase:
    """One publication of ``rounds`` messages per sensor, and what the workers made of it."""

    def __init__(self, name: str, rate: float) -> None:
        self.name, self.rate = name, rate
        self.paced = f"paced at {rate:,.0f}/s" if rate else "unpaced"
        self.total = self.seen = self.acknowledged = 0
        self.first = self.done_at = self.published = 0.0
        self.worker_cpu = self.broker_cpu = 0.0
        self.latencies: list[float] = []
        self.load: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def events_per_second(self) -> float:
        return min(self.seen, self.total) / (self.done_at - self.first)


def run_phase(
    phase: Phase,
    url: str,
    mqtt_url: str,
    prefix: str,
    devices: list[str],
    probe: str,
    watcher: "ProbeWatcher",
    workers: list[Any],
    broker: Any,
    args: argparse.Namespace,
) -> None:
    """Publish, then wait until every message is counted (or nothing moves for 30 s)."""
    phase.total = args.rounds * len(devices)
    watcher.latencies.clear()
    cpu_before = {w.pid: cpu_seconds(w.pid) for w in workers}
    broker_before = cpu_seconds(broker.pid) if broker else 0.0
    with psycopg.connect(plain_url(url), autocommit=True) as connection:
        cursor = connection.cursor()
        already = counted(cursor, probe)
        phase.first, publishers, done = publish_all(
            mqtt_url, prefix, devices, args.rounds, phase.rate, args.publishers, args.qos
        )
        for process in publishers:
            process.join()
        phase.published = time.time() - phase.first
        phase.acknowledged = sum(done.get()[0] for _ in publishers)
        last_change = time.time()
        while time.time() - last_change < 30:
            now_seen = counted(cursor, probe) - already
            if now_seen != phase.seen:
                phase.seen, last_change = now_seen, time.time()
            if phase.seen >= phase.total:
                phase.done_at = time.time()
                break
            time.sleep(0.02)
    phase.load = os.getloadavg()
    phase.latencies = list(watcher.latencies)
    phase.worker_cpu = sum(cpu_seconds(pid) - before for pid, before in cpu_before.items())
    phase.broker_cpu = cpu_seconds(broker.pid) - broker_before if broker else 0.0
    if not phase.done_at:
        print(f"{phase.name}: only {phase.seen} of {phase.total} messages counted (dropped?)")
        phase.done_at = last_change
    print(
        f"{phase.name}: published {phase.acknowledged} of {phase.total} messages (QoS "
        f"{args.qos}, acknowledged by the broker) in {phase.published:.1f} s by "
        f"{args.publishers} processes ({phase.paced})"
    )
    per_event = 1e6 / max(phase.seen, 1)
    mosquitto = f", Mosquitto's {phase.broker_cpu * per_event:.0f} us/event" if broker else ""
    print(
        f"{phase.name}: MQTT -> {args.workers} ingest processes x {args.connections} sessions -> "
        f"PostgreSQL: {phase.events_per_second:,.0f} events/s; workers' CPU "
        f"{phase.worker_cpu * per_event:.0f} us/event{mosquitto}; load average at the end "
        f"{phase.load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--rate",
        type=float,
        default=12_000,
        help="the latency phase's publish rate, messages/s (the throughput phase is unpaced)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="messages per sensor and phase")
    parser.add_argument("--workers", type=int, default=2, help="ingest processes")
    parser.add_argument("--connections", type=int, default=4, help="MQTT sessions per process")
    parser.add_argument("--broker", choices=("own", "system"), default="own")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=1, help="publishers' QoS")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    throughput, latency = Phase("throughput", 0), Phase("latency", args.rate)
    with database("postgresql") as url:
        app = migrated_app(url)
        data = bulk_lots(app, lots=50, spaces_per_lot=SENSORS // 50)
        app.extensions["db_engine"].dispose()
        probe, devices = data["devices"][0], data["devices"][1:]
        total = args.rounds * len(devices)
        base_rate = baseline(url, devices, args.rounds, datetime.now(UTC) - timedelta(hours=1))
        print(
            f"baseline  raw psycopg batched upsert: {total} events, {base_rate:,.0f} events/s, "
            f"load {os.getloadavg()[0]:.1f}"
        )

        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        broker, mqtt_url = None, MQTT_URL
        if args.broker == "own":
            port = free_port()
            broker, mqtt_url = own_mosquitto(port), f"mqtt://127.0.0.1:{port}"
        print(f"broker    {mqtt_url} ({'own Mosquitto, tuned' if broker else 'as configured'})")
        workers: list[Any] = []
        try:
            publish_alone(mqtt_url, devices, args)
            workers = start_workers(url, mqtt_url, prefix, args.workers, args.connections)
            watcher = ProbeWatcher(url, probe)
            probing = threading.Event()
            client = publisher(mqtt_url)
            watcher.start()
            prober = threading.Thread(
                target=probe_loop, args=(client, prefix, probe, probing), daemon=True
            )
            prober.start()
            # The workers are subscribed once probes come through (a message published before
            # that would have no subscriber, and the broker would drop it).
            deadline = time.monotonic() + 120
            while len(watcher.latencies) < 5 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1)  # every session of every worker
            # Throughput unpaced, against the unpaced baseline (a paced run is capped by its
            # pace); then the latency at a pace above the 10,000/s target, which means
            # something only while the workers keep up (unpaced, probes queue behind the burst).
            for phase in (throughput, latency):
                run_phase(
                    phase, url, mqtt_url, prefix, devices, probe, watcher, workers, broker, args
                )
            watcher.stop.set()
            probing.set()
            client.loop_stop()
            client.disconnect()
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(20)
            if broker is not None:
                broker.terminate()
                broker.wait(10)
        rate = throughput.events_per_second
        print(f"ratio     ours unpaced / baseline = {rate / base_rate:.2f} (target >= 0.5)")
        sustained = latency.events_per_second
        lat = latency.latencies
        print(
            f"latency   publish -> visible over {len(lat)} probes while ingesting "
            f"{sustained:,.0f} events/s ({latency.paced}): p50 {percentile(lat, 0.5):.3f} s,"
            f" p99 {percentile(lat, 0.99):.3f} s, max {max(lat, default=float('nan')):.3f} s"
            f" (target p99 < 1 s)"
        )
        report.figure(
            f"MQTT -> PostgreSQL, {args.workers} workers (unpaced)", rate, "events/s",
            baseline=base_rate, baseline_name="raw psycopg batched upsert",
            target=">= 10,000 events/s and >= 0.5 x baseline",
            met=rate >= 10_000 and rate / base_rate >= 0.5,
        )  # fmt: skip
        report.figure(
            f"MQTT -> PostgreSQL sustained ({latency.paced})", sustained, "events/s",
            target=">= 10,000 events/s", met=sustained >= 10_000,
        )  # fmt: skip
        p99 = percentile(lat, 0.99)
        report.figure(
            f"publish -> visible, p99 ({latency.paced})", p99, "s", target="< 1 s", met=p99 < 1,
        )  # fmt: skip
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
