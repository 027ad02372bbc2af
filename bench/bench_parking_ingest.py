"""Sensor ingestion through MQTT into PostgreSQL, 50,000 sensors.

Targets (issue 8): at least 10,000 events/s sustained, at least 0.5 of a raw psycopg batched
upsert of the same rows measured in the same run, and p99 from publish to visible state under 1 s.

- **Baseline**: raw psycopg 3 (pipelined ``executemany``), batches of 1,000: insert the history
  rows (ON CONFLICT DO NOTHING) and update the sensors' state, for 100,000 events.
- **Ours**: ``flask parking ingest`` worker processes subscribed to Mosquitto (shared
  subscription, QoS 1, acknowledged after commit); this script publishes 100,000 state messages
  at a paced rate and waits until every one is counted in ``parking_ingest_counts``.
- **Latency**: every 100 ms a probe message for a dedicated sensor carries its publish time as
  ``observed_at``; a watcher polls that sensor's state every few ms: visible - published.

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
    return len(events) / (time.perf_counter() - started)


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


def counted(cursor: Any) -> int:
    cursor.execute("SELECT coalesce(sum(events), 0) FROM parking_ingest_counts WHERE source='mqtt'")
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
    host, port = mqtt_url.split("://")[1].split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(5000)
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    return client


def publish_slice(
    mqtt_url: str, prefix: str, devices: list[str], rounds: int, rate: float, offset: int
) -> None:
    """One publisher process: its share of the messages at its share of the rate, QoS 1,
    waiting for the broker to acknowledge each one (paho's message ids wrap at 65,535, so the
    number outstanding is kept well below that)."""
    client = publisher(mqtt_url)
    base = datetime.now(UTC) + timedelta(microseconds=offset)
    messages = [
        (
            f"{prefix}/parking/{device}/state",
            json.dumps(
                {
                    "occupied": (r + n) % 2 == 1,
                    "observed_at": (base + timedelta(seconds=r, microseconds=n)).isoformat(),
                }
            ),
        )
        for r in range(rounds)
        for n, device in enumerate(devices)
    ]
    started = time.monotonic()
    pending: list[Any] = []
    for index, (topic, payload) in enumerate(messages):
        pending.append(client.publish(topic, payload, qos=1))
        if index % 200 == 0:
            pending = [info for info in pending if not info.is_published()]
            while len(pending) > 20_000:  # back-pressure from the broker
                time.sleep(0.005)
                pending = [info for info in pending if not info.is_published()]
            ahead = started + index / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    for info in pending:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()


def publish_all(
    mqtt_url: str, prefix: str, devices: list[str], rounds: int, rate: float, processes: int
) -> tuple[float, list[Any]]:
    """Start the publisher processes; returns the start time and the processes."""
    share = [devices[i::processes] for i in range(processes)]
    started = time.time()
    workers = [
        multiprocessing.Process(
            target=publish_slice,
            args=(mqtt_url, prefix, share[i], rounds, rate / processes, i),
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    return started, workers


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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=15_000, help="publish rate, messages/s")
    parser.add_argument("--rounds", type=int, default=2, help="messages per sensor")
    parser.add_argument("--workers", type=int, default=2, help="ingest processes")
    parser.add_argument("--connections", type=int, default=8, help="MQTT sessions per process")
    parser.add_argument("--broker", choices=("own", "system"), default="own")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with database("postgresql") as url:
        app = migrated_app(url)
        data = bulk_lots(app, lots=50, spaces_per_lot=SENSORS // 50)
        app.extensions["db_engine"].dispose()
        probe, devices = data["devices"][0], data["devices"][1:]
        total = args.rounds * len(devices)
        base_rate = baseline(url, devices, args.rounds, datetime.now(UTC) - timedelta(hours=1))
        print(f"baseline  raw psycopg batched upsert: {total} events, {base_rate:,.0f} events/s")

        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        broker, mqtt_url = None, MQTT_URL
        if args.broker == "own":
            port = free_port()
            broker, mqtt_url = own_mosquitto(port), f"mqtt://127.0.0.1:{port}"
        print(f"broker    {mqtt_url} ({'own Mosquitto, tuned' if broker else 'as configured'})")
        workers = start_workers(url, mqtt_url, prefix, args.workers, args.connections)
        watcher = ProbeWatcher(url, probe)
        probing = threading.Event()
        client = publisher(mqtt_url)
        try:
            time.sleep(3)  # workers connect and subscribe
            with psycopg.connect(plain_url(url), autocommit=True) as connection:
                cursor = connection.cursor()
                watcher.start()
                prober = threading.Thread(
                    target=probe_loop, args=(client, prefix, probe, probing), daemon=True
                )
                prober.start()
                first, publishers = publish_all(
                    mqtt_url, prefix, devices, args.rounds, args.rate, args.publishers
                )
                for process in publishers:
                    process.join()
                published = time.time() - first
                seen, last_change, done_at = 0, time.time(), None
                while time.time() - last_change < 30:
                    now_seen = counted(cursor)
                    if now_seen != seen:
                        seen, last_change = now_seen, time.time()
                    if seen >= total:
                        done_at = time.time()
                        break
                    time.sleep(0.02)
        finally:
            watcher.stop.set()
            probing.set()
            client.loop_stop()
            client.disconnect()
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(20)
            if broker is not None:
                broker.terminate()
                broker.wait(10)
        if done_at is None:
            print(f"ours: only {seen} of {total} messages counted (the broker dropped some?)")
            done_at = last_change
        rate = min(seen, total) / (done_at - first)
        print(
            f"published {total} messages (QoS 1, acknowledged by the broker) in {published:.1f} s"
            f" by {args.publishers} processes (target {args.rate:,.0f}/s)"
        )
        print(
            f"ours      MQTT -> {args.workers} ingest processes x {args.connections} sessions -> "
            f"PostgreSQL: {rate:,.0f} events/s (target >= 10,000)"
        )
        print(f"ratio     ours / baseline = {rate / base_rate:.2f} (target >= 0.5)")
        lat = watcher.latencies
        print(
            f"latency   publish -> visible over {len(lat)} probes: "
            f"p50 {percentile(lat, 0.5):.3f} s,"
            f" p99 {percentile(lat, 0.99):.3f} s, max {max(lat, default=float('nan')):.3f} s"
            " (target p99 < 1 s)"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
