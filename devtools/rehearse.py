"""The scale-out rehearsal on one machine (``make rehearse``): real parts, no containers.

It starts PostgreSQL's fresh database (migrated with ``flask db upgrade``, seeded with ``flask
demo seed`` and a simulated lot), localstripe, two gunicorn hosts with the production settings
behind nginx (``deploy/nginx.conf``), two ingest workers sharing the sensors' MQTT stream on the
real Mosquitto, and two schedulers (a leader and a standby). It drives a mixed load through
nginx for ``--seconds`` (searches, reservations with an ``Idempotency-Key``, hospitals posting
visits, settlements by face, sensors publishing with MQTT QoS 1) and, during it, kills with
SIGKILL one API host, one ingest worker and the scheduler leader (each is restarted a few
seconds later, as a supervisor would). Then it reports the requests that failed (and whether
they were in flight at a kill), the events published and applied, the sweeps missed, and how
long the standby took to lead. It exits 1 when an event was lost or a sweep missed. Before the
load it runs each kind of operation alone (``--calibrate`` seconds) for the CPU it costs the API
hosts and PostgreSQL: the figures behind the README's capacity model.

Ports: nginx on ``--port`` (8350), the API hosts on the next two, localstripe on the third.
It needs PostgreSQL (``--database``, the local server by default), Mosquitto on
127.0.0.1:1883 (``REHEARSE_MQTT_URL``) and Redis (``REHEARSE_REDIS_URL``, database 12), which a
production environment requires for its rate limits; nginx is installed with apt-get if missing.
"""

import argparse
import base64
import http.client
import itertools
import json
import math
import os
import random
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from devtools.localstripe import LocalStripe
from devtools.postgres import LOCAL, scratch_database
from devtools.service import ROOT, answers, exit_on_sigterm

BIN = Path(sys.executable).parent
NGINX_TEMPLATE = ROOT / "deploy" / "nginx.conf"
FACES = ROOT / "tests" / "health" / "fixtures" / "faces"
PASSWORD = "rehearsal-password-1"  # noqa: S105 - throw-away accounts in a throw-away database
TERMS = "2026-11"
CONSENT = {"consent_off_session": True, "consent_text_version": "2026-11"}
REPORTED_JOB = "parking.reservations"
SWEEP_SLACK_SECONDS = 3.0  # a run this much later than its interval is still on time


# --- pure parts (tested in tests/devtools/test_rehearse.py) --------------------------------


def nginx_config(template: str, listen: str, upstreams: list[str], prefix: str) -> str:
    """``deploy/nginx.conf`` filled in: nginx on ``listen`` in front of ``upstreams``."""
    servers = "\n".join(
        f"        server {upstream} max_fails=1 fail_timeout=5s;" for upstream in upstreams
    )
    return string.Template(template).substitute(listen=listen, servers=servers, prefix=prefix)


def missed_runs(starts: list[float], interval: float, until: float) -> int:
    """Runs missed by a job that should run every ``interval`` seconds, given the times its
    runs started (from every scheduler) and the end of the observation: a gap of more than
    ``interval`` (plus a little slack) between runs, or after the last, is one miss per
    interval it covers."""
    if not starts:
        return 0
    times = [*sorted(starts), until]
    missed = 0
    for before, after in itertools.pairwise(times):
        missed += max(0, math.floor((after - before - SWEEP_SLACK_SECONDS) / interval))
    return missed


@dataclass
class Outcome:
    kind: str
    started: float
    ended: float
    status: int  # 0: no answer (connection error, timeout)
    error: str = ""  # the body's error code, if any
    retried: str = ""  # what the retry with the same Idempotency-Key got


def failed(outcome: Outcome) -> bool:
    """A request that got no answer or a server error (a 4xx is the app refusing: an answer)."""
    return outcome.status == 0 or outcome.status >= 500


def in_flight(outcome: Outcome, kills: list[float]) -> bool:
    """True when the request was under way at one of the ``kills`` (monotonic times)."""
    return any(outcome.started <= kill <= outcome.ended + 0.05 for kill in kills)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def log_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON log lines of a child's log file (other lines skipped)."""
    if not path.exists():
        return
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with suppress(ValueError):
                yield json.loads(line)


def wall(stamp: str) -> float:
    """A log line's ``ts`` as a Unix time."""
    return datetime.fromisoformat(stamp).timestamp()


# --- processes -----------------------------------------------------------------------------


class Child:
    """One part of the stack: a process group (so a kill takes its workers with it)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.command, self.env = name, command, env
        self.log_path = logs / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.cpu_seconds = 0.0  # of earlier incarnations (killed and restarted)

    def start(self) -> "Child":
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(  # noqa: S603 - our own commands
            self.command,
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def cpu(self) -> float:
        """CPU seconds used by the process group so far (this and earlier incarnations)."""
        import psutil

        if self.process is None:
            return self.cpu_seconds
        total = 0.0
        with suppress(psutil.Error):
            parent = psutil.Process(self.process.pid)
            for process in [parent, *parent.children(recursive=True)]:
                with suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
        return self.cpu_seconds + total

    def rss_mb(self) -> list[float]:
        import psutil

        if self.process is None:
            return []
        with suppress(psutil.Error):
            parent = psutil.Process(self.process.pid)
            return [p.memory_info().rss / 2**20 for p in [parent, *parent.children()]]
        return []

    def kill(self) -> float:
        """SIGKILL the whole group, as a host or a process dying; returns the monotonic time."""
        assert self.process is not None
        self.cpu_seconds = self.cpu()
        moment = time.monotonic()
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None
        return moment

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def wait_for(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        """The first log line of this child whose ``event`` starts with ``event``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in log_lines(self.log_path):
                if str(line.get("event", "")).startswith(event):
                    return line
            if not self.alive():
                raise RuntimeError(f"{self.name} exited: {self.tail()}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not log {event!r} within {timeout}s: {self.tail()}")

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2500:] if self.log_path.exists() else ""


def wait_until_answers(child: Child, port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers("127.0.0.1", port):
            return
        if not child.alive():
            raise RuntimeError(f"{child.name} exited at start: {child.tail()}")
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not answer on port {port}: {child.tail()}")


def ensure_nginx() -> str:
    """nginx's path; installs Debian's package when it is missing (like .ci/run's chromium)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if found:
        return found
    print("nginx is missing: apt-get install nginx", flush=True)
    apt = {"DEBIAN_FRONTEND": "noninteractive", **os.environ}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt)  # noqa: S607
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx"], check=True, env=apt)  # noqa: S607
    return shutil.which("nginx") or "/usr/sbin/nginx"


def _ed25519_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def production_env(database_url: str, stripe_url: str, tag: str) -> dict[str, str]:
    """A production environment (``core.config.production_problems`` finds nothing missing),
    with localstripe standing in for Stripe and MQTT names of this run's own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "SCHEDULER_", "MQTT_", "STRIPE_", "PARKING_", "FACE_"))
    }
    env.update(
        APP_ENV="production",
        FLASK_APP="app",
        DATABASE_URL=database_url,
        REDIS_URL=os.environ.get("REHEARSE_REDIS_URL", "redis://127.0.0.1:6379/12"),
        SECRET_KEY=uuid.uuid4().hex + uuid.uuid4().hex,
        JWT_SECRET_KEY=uuid.uuid4().hex + uuid.uuid4().hex,
        STRIPE_SECRET_KEY=f"sk_test_rehearse_{tag}",
        STRIPE_API_BASE=stripe_url,
        STRIPE_WEBHOOK_SECRET=f"whsec_rehearse_{tag}",
        CIVIC_SIGNING_KEY=_ed25519_pem(),
        FACE_KEY=base64.b64encode(os.urandom(32)).decode(),
        # The load sends two photos, cropped differently each time (photo_variant): the default
        # replay distance (0.12) would rightly take them for replays; this one lets them in.
        FACE_REPLAY_DISTANCE="0.000001",
        TRUSTED_PROXIES="1",
        LOG_LEVEL="INFO",
        MQTT_URL=os.environ.get("REHEARSE_MQTT_URL", "mqtt://127.0.0.1:1883"),
        MQTT_TOPIC_PREFIX=f"rehearse{tag}",
        MQTT_SHARED_GROUP=f"rehearse{tag}",
        # Unpaid holds expire within the run, so the reservation sweep has work to be seen doing.
        PARKING_HOLD_MINUTES="1",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    return env


def fresh_database(server_url: str, tag: str) -> AbstractContextManager[str]:
    """A new empty database for this rehearsal on the server of ``server_url``; dropped after."""
    return scratch_database(server_url, f"civic_rehearse_{tag}")


def run_checked(command: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own commands
        command, env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def setup_world(citizens: int, patients: int, sensors: int) -> None:
    """Run in a child with the production environment: accounts, tokens, the hospital's key,
    the simulated lot's sensors. Prints one JSON line."""
    # Throw-away accounts: hash their passwords cheaply (the default argon2 cost took seconds per
    # account on a busy machine). The hashes stay valid argon2; nothing else is changed.
    from argon2 import PasswordHasher
    from sqlalchemy import select

    from app import create_app
    from civic.service import credit
    from core import db
    from core.auth import service as auth
    from core.auth.models import Organisation
    from parking import demo
    from parking.models import ParkingLot
    from parking.service import operators

    auth._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    app = create_app()
    with app.app_context():
        hospital = db.session.scalar(
            select(Organisation).where(Organisation.name == "Demo City Hospital")
        )
        assert hospital is not None, "flask demo seed makes Demo City Hospital"
        hospital_key = auth.issue_api_key(hospital.id, "rehearsal").secret
        devices = demo.simulated_devices(sensors)
        lot = db.session.scalar(select(ParkingLot).where(ParkingLot.name == demo.SIMULATED_LOT))
        assert lot is not None
        gateway_key = operators.create_gateway(demo.operator(), "rehearsal")["api_key"]
        official = auth.login("official.tax@demo.city", "demo-password").access_token
        tokens = []
        for n in range(citizens + patients):
            email = f"rehearsal{n}@example.test"
            user = auth.create_user(email=email, password=PASSWORD, name=f"Rehearsal {n}")
            if n >= citizens:
                credit.post_event(user.id, 50, "rehearsal", "Rehearsal")  # 650: may join
            db.session.commit()
            tokens.append(auth.login(email, PASSWORD).access_token)
        db.session.commit()
        print(
            json.dumps(
                {
                    "hospital_key": hospital_key,
                    "gateway_key": gateway_key,
                    "official": official,
                    "lot_id": lot.id,
                    "lat": lot.lat,
                    "lon": lot.lon,
                    "devices": devices,
                    "citizens": tokens[:citizens],
                    "patients": tokens[citizens:],
                }
            )
        )


# --- the load ------------------------------------------------------------------------------


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(f"{head}{value}\r\n".encode())
    for name, (filename, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


_CROPS_USED: set[tuple[int, tuple[int, ...]]] = set()


def photo_variant(photo: bytes, rng: random.Random) -> bytes:
    """The photo cropped by a few pixels and saved again: a new capture of the same face to the
    replay check (the same bytes twice would be refused as a replay, rightly). A crop is never
    drawn twice for the same photo in one process: the same crop gives the same image, and a
    10-minute load drew one twice (a replay, 422)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(photo))
    width, height = image.size
    while True:
        crop = tuple(rng.randint(0, 12) for _ in range(4))  # 28,561 crops of each photo
        if (hash(photo), crop) not in _CROPS_USED:
            _CROPS_USED.add((hash(photo), crop))
            break
    left, top, right, bottom = crop
    out = io.BytesIO()
    image.crop((left, top, width - right, height - bottom)).save(out, "JPEG", quality=92)
    return out.getvalue()


class Client:
    """HTTP to nginx over one persistent connection; records every request's outcome."""

    def __init__(self, port: int, outcomes: list[Outcome], lock: threading.Lock) -> None:
        self.port, self.outcomes, self.lock = port, outcomes, lock
        self.connection: http.client.HTTPConnection | None = None

    def request(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        token: str | None = None,
        api_key: str | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
        raw: tuple[bytes, str] | None = None,
        record: bool = True,
    ) -> tuple[int, Any]:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if api_key:
            headers["X-API-Key"] = api_key
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        data: bytes | None = None
        if raw is not None:
            data, headers["Content-Type"] = raw
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        started = time.monotonic()
        status, payload = 0, None
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=40)
            self.connection.request(method, path, body=data, headers=headers)
            response = self.connection.getresponse()
            content = response.read()
            status = response.status
            with suppress(ValueError):
                payload = json.loads(content) if content else None
        except (OSError, http.client.HTTPException):
            if self.connection is not None:
                self.connection.close()
            self.connection = None
        error = str(payload.get("error", "")) if isinstance(payload, dict) else ""
        outcome = Outcome(kind, started, time.monotonic(), status, error)
        if record:
            with self.lock:
                self.outcomes.append(outcome)
        if failed(outcome) and idempotency_key and record:
            # The client's side of idempotency: the same request again, with the same key.
            time.sleep(0.3)
            retry_status, payload = self.request(
                kind,
                method,
                path,
                token=token,
                api_key=api_key,
                body=body,
                idempotency_key=idempotency_key,
                raw=raw,
                record=False,
            )
            outcome.retried = str(retry_status)
            status = retry_status
        return status, payload


@dataclass
class World:
    port: int
    hospital_key: str
    gateway_key: str
    official: str
    lot_id: str
    lat: float
    lon: float
    devices: list[str]
    citizens: list[str]
    patients: list[str]
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    published: int = 0
    publish_failed: int = 0

    def client(self) -> Client:
        return Client(self.port, self.outcomes, self.lock)


def searcher(world: World, rng: random.Random) -> None:
    client = world.client()
    while not world.stop.is_set():
        lat = world.lat + rng.uniform(-0.01, 0.01)
        lon = world.lon + rng.uniform(-0.01, 0.01)
        client.request("search", "GET", f"/api/v1/parking/availability?lat={lat}&lon={lon}")
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
        end = start + timedelta(hours=1)
        window = f"starts_at={start:%Y-%m-%dT%H:%M}Z&ends_at={end:%Y-%m-%dT%H:%M}Z"
        client.request(
            "search-window",
            "GET",
            f"/api/v1/parking/availability?lat={lat}&lon={lon}&{window}&kind=car",
        )


def reserver(world: World, rng: random.Random, tokens: list[str]) -> None:
    client = world.client()
    n = 0
    while not world.stop.is_set():
        token = tokens[n % len(tokens)]
        n += 1
        start = datetime.now(UTC) + timedelta(minutes=rng.randint(90, 6 * 24 * 60))
        start = start.replace(second=0, microsecond=0)
        declined = rng.random() < 0.1  # an unpaid hold, released by the sweep
        status, body = client.request(
            "reserve",
            "POST",
            "/api/v1/parking/reservations",
            token=token,
            idempotency_key=str(uuid.uuid4()),
            body={
                "lot_id": world.lot_id,
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(minutes=rng.choice([30, 60, 90]))).isoformat(),
                "vehicle_plate": f"{rng.randint(10, 99)}가{rng.randint(1000, 9999)}",
                "payment_method": "pm_card_chargeDeclined" if declined else "pm_card_visa",
            },
        )
        if status in (200, 201) and isinstance(body, dict) and body.get("id") and not declined:
            client.request(
                "cancel",
                "POST",
                f"/api/v1/parking/reservations/{body['id']}/cancel",
                token=token,
                idempotency_key=str(uuid.uuid4()),
            )


def hospital(world: World, rng: random.Random) -> None:
    client = world.client()
    n = 0
    while not world.stop.is_set():
        patient = world.patients[n % len(world.patients)]
        n += 1
        status, code = client.request(
            "checkin-code", "GET", "/api/v1/health/checkin-code", token=patient
        )
        if status != 200 or not isinstance(code, dict):
            time.sleep(0.2)
            continue
        status, visit = client.request(
            "visit",
            "POST",
            "/api/v1/health/visits",
            api_key=world.hospital_key,
            idempotency_key=str(uuid.uuid4()),
            body={"checkin_code": code["code"], "department": "Internal medicine"},
        )
        if status != 201 or not isinstance(visit, dict):
            time.sleep(0.2)
            continue
        item = {"code": "CONSULT", "description": "Consultation", "quantity": 1}
        client.request(
            "charges",
            "POST",
            f"/api/v1/health/visits/{visit['id']}/charges",
            api_key=world.hospital_key,
            idempotency_key=str(uuid.uuid4()),
            body={"items": [{**item, "unit_price": rng.choice([1000, 2000, 3000])}]},
        )
        client.request(
            "close",
            "POST",
            f"/api/v1/health/visits/{visit['id']}/close",
            api_key=world.hospital_key,
            idempotency_key=str(uuid.uuid4()),
        )


def settler(world: World, rng: random.Random) -> None:
    client = world.client()
    photos = [(FACES / name).read_bytes() for name in ("obama2.jpg", "obama3.jpg")]
    n = 0
    while not world.stop.is_set():
        patient = world.patients[n % len(world.patients)]
        n += 1
        body = multipart({}, {"image": ("face.jpg", photo_variant(rng.choice(photos), rng))})
        client.request(
            "settle",
            "POST",
            "/api/v1/health/settlements",
            token=patient,
            idempotency_key=str(uuid.uuid4()),
            raw=body,
        )
        world.stop.wait(0.5)


def publisher(world: World, rng: random.Random, prefix: str, rate: float, url: str) -> None:
    """Sensor events with QoS 1; an event counts as published once the broker acknowledged it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from parking.mqtt import broker_address

    host, port, *_ = broker_address(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rehearsal-sensors-{uuid.uuid4()}")
    acked = threading.Semaphore(0)

    def on_publish(*_args: Any) -> None:
        acked.release()

    client.on_publish = on_publish
    client.max_inflight_messages_set(100)
    client.connect(host, port)
    client.loop_start()
    sent = 0
    began = time.monotonic()
    last = datetime.now(UTC)
    try:
        while not world.stop.is_set():
            due = began + sent / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            moment = max(datetime.now(UTC), last + timedelta(microseconds=1))
            last = moment
            device = rng.choice(world.devices)
            payload = json.dumps(
                {"occupied": rng.random() < 0.5, "observed_at": moment.isoformat()}
            )
            info = client.publish(f"{prefix}/parking/{device}/state", payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                world.publish_failed += 1
            sent += 1
    finally:
        deadline = time.monotonic() + 20
        while sent and time.monotonic() < deadline and world.published < sent:
            if acked.acquire(timeout=0.5):
                world.published += 1
            else:
                continue
        while acked.acquire(blocking=False):
            world.published += 1
        world.published = min(world.published, sent)
        client.loop_stop()
        client.disconnect()


# --- the rehearsal -------------------------------------------------------------------------


def postgres_cpu(database_url: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to this database."""
    import psutil
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as connection:
        pids = [
            row[0]
            for row in connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ]
    total = 0.0
    for pid in pids:
        with suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


# What one operation of each kind is, for the calibration: its worker and the request that
# counts it (a settlement counts only when it paid something).
CALIBRATED = (
    ("search + windowed search", "searcher", "search", None),
    ("reservation (paid) + cancel", "reserver", "reserve", 201),
    ("visit: check-in, post, charge, close", "hospital", "visit", 201),
    ("settlement by face", "settler", "settle", 201),
)


def calibrate(
    world: World, apis: list[Child], database_url: str, seconds: float, rng: random.Random
) -> list[tuple[str, int, float, float]]:
    """Each kind of operation alone, one client, for ``seconds``: how many, and the CPU the API
    hosts and PostgreSQL spent on each (milliseconds per operation)."""
    workers: dict[str, Callable[..., None]] = {
        "searcher": searcher,
        "reserver": reserver,
        "hospital": hospital,
        "settler": settler,
    }
    figures = []
    for label, worker, kind, status in CALIBRATED:
        alone = World(**{**world.__dict__, "outcomes": [], "stop": threading.Event()})
        extra = (world.citizens,) if worker == "reserver" else ()
        api_before = sum(api.cpu() for api in apis)
        pg_before = postgres_cpu(database_url)
        thread = threading.Thread(target=workers[worker], args=(alone, rng, *extra), daemon=True)
        thread.start()
        alone.stop.wait(seconds)
        alone.stop.set()
        thread.join(60)
        api_used = sum(api.cpu() for api in apis) - api_before
        pg_used = postgres_cpu(database_url) - pg_before
        done = sum(
            1 for o in alone.outcomes if o.kind == kind and (status is None or o.status == status)
        )
        per = 1000 / done if done else float("nan")
        figures.append((label, done, api_used * per, pg_used * per))
    return figures


def _applied_events(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as connection:
        row = connection.execute(
            "SELECT count(*) FROM parking_sensor_events e JOIN parking_sensors s "
            "ON s.id = e.sensor_id WHERE s.device_id LIKE 'sim-%' AND e.source = 'mqtt'"
        ).fetchone()
    return int(row[0]) if row else 0


def _ingest_outcomes(database_url: str) -> str:
    """The ingest workers' own counts (``applied 10000, duplicate 12``): a duplicate is an
    event delivered again (unacknowledged when a worker died) and not applied twice."""
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as connection:
        rows = connection.execute(
            "SELECT outcome, events FROM parking_ingest_counts WHERE source = 'mqtt' "
            "ORDER BY outcome"
        ).fetchall()
    return ", ".join(f"{outcome} {events}" for outcome, events in rows) or "none"


def _stale_holds(database_url: str, grace_seconds: float) -> tuple[int, int]:
    """Holds created during the run (declined payments), and those of them still held more
    than ``grace_seconds`` after their expiry."""
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as connection:
        row = connection.execute(
            "SELECT count(*) FILTER (WHERE payment_failure IS NOT NULL OR status = 'expired'), "
            "count(*) FILTER (WHERE status = 'held' AND created_at < now() - interval '1 minute'"
            " - make_interval(secs => %s)) FROM parking_reservations",
            (grace_seconds,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


WORK_DONE = (
    ("reservations", "parking_reservations"),
    ("settlements", "health_settlements"),
    ("visits", "health_visits"),
    ("bills", "health_bills"),
    ("applications", "civic_applications"),
)


def work_done(database_url: str) -> str:
    """What the load made, by table and status (``reservations: canceled 40, expired 3``)."""
    import psycopg

    lines = []
    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as connection:
        for label, table in WORK_DONE:
            rows = connection.execute(
                f"SELECT status, count(*) FROM {table} GROUP BY status ORDER BY status"  # noqa: S608 - fixed names
            ).fetchall()
            lines.append(f"{label}: " + (", ".join(f"{s} {n}" for s, n in rows) or "none"))
    return "; ".join(lines)


def _job_runs(schedulers: list[Child]) -> dict[str, list[tuple[float, str]]]:
    runs: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for child in schedulers:
        for line in log_lines(child.log_path):
            if line.get("event") == "job started" and "job" in line:
                runs[str(line["job"])].append((wall(str(line["ts"])), child.name))
    return runs


def _job_intervals(env: dict[str, str]) -> dict[str, int]:
    script = (
        "import json\nfrom app import create_app\nfrom core.scheduler import jobs_of\n"
        "print(json.dumps({j.id: j.seconds for j in jobs_of(create_app())}))"
    )
    return dict(
        json.loads(run_checked([sys.executable, "-c", script], env, "jobs").splitlines()[-1])
    )


def rehearse(args: argparse.Namespace) -> int:
    tag = uuid.uuid4().hex[:8]
    rng = random.Random(args.seed)  # noqa: S311 - a load, not a secret
    nginx_port, api_ports, stripe_port = args.port, [args.port + 1, args.port + 2], args.port + 3
    for port in (nginx_port, *api_ports, stripe_port):
        if answers("127.0.0.1", port):
            raise SystemExit(f"port {port} is taken (another rehearsal?); pass --port")
    nginx = ensure_nginx()
    workdir = Path(tempfile.mkdtemp(prefix="civic-rehearse-"))
    logs = workdir / "logs"
    logs.mkdir()
    children: list[Child] = []
    print(f"rehearsal {tag}: logs in {logs}", flush=True)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    with (
        fresh_database(args.database, tag) as database_url,
        LocalStripe(port=stripe_port) as stripe,
    ):
        try:
            env = production_env(database_url, stripe.url, tag)
            print("migrating and seeding...", flush=True)
            run_checked([str(BIN / "flask"), "db", "upgrade"], env, "flask db upgrade")
            seed_env = {**env, "APP_ENV": "development"}
            run_checked([str(BIN / "flask"), "demo", "seed"], seed_env, "flask demo seed")
            world_json = run_checked(
                [
                    sys.executable,
                    "-c",
                    "from devtools.rehearse import setup_world; "
                    f"setup_world({args.citizens}, {args.patients}, {args.sensors})",
                ],
                env,
                "setting up the world",
            ).splitlines()[-1]
            stripe.register_webhook(
                "rehearsal",
                f"http://127.0.0.1:{nginx_port}/api/v1/payments/webhooks/stripe",
                env["STRIPE_WEBHOOK_SECRET"],
            )
            intervals = _job_intervals(env)

            def api_host(n: int) -> Child:
                return Child(
                    f"api{n}",
                    [
                        str(BIN / "gunicorn"),
                        "-c",
                        str(ROOT / "gunicorn.conf.py"),
                        "--bind",
                        f"127.0.0.1:{api_ports[n - 1]}",
                    ],
                    env,
                    logs,
                )

            def ingest_worker(n: int) -> Child:
                worker_env = {**env, "MQTT_CLIENT_ID": f"rehearse{tag}-ingest{n}"}
                return Child(
                    f"ingest{n}", [str(BIN / "flask"), "parking", "ingest"], worker_env, logs
                )

            def scheduler(name: str) -> Child:
                command = [str(BIN / "flask"), "scheduler", "run", "--poll", str(args.poll)]
                return Child(name, command, env, logs)

            apis = [api_host(1), api_host(2)]
            ingests = [ingest_worker(1), ingest_worker(2)]
            leader, standby = scheduler("scheduler1"), scheduler("scheduler2")
            prefix = workdir / "nginx"
            prefix.mkdir()
            # nginx's workers drop root for nobody: they must reach their temporary directories.
            workdir.chmod(0o755)
            prefix.chmod(0o755)
            upstreams = [f"127.0.0.1:{p}" for p in api_ports]
            (prefix / "nginx.conf").write_text(
                nginx_config(
                    NGINX_TEMPLATE.read_text(), f"127.0.0.1:{nginx_port}", upstreams, str(prefix)
                )
            )
            front = Child(
                "nginx",
                [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
                env,
                logs,
            )
            children.extend([*apis, *ingests, leader, standby, front])
            for api in apis:
                api.start()
            for api, port in zip(apis, api_ports, strict=True):
                wait_until_answers(api, port)
            front.start()
            wait_until_answers(front, nginx_port)
            for worker in ingests:
                worker.start()
            for worker in ingests:
                worker.wait_for("mqtt connected")
            leader.start()
            leader.wait_for("scheduler is the leader")
            standby.start()
            standby.wait_for("another scheduler leads")

            data = json.loads(world_json)
            world = World(port=nginx_port, **data)
            setup = world.client()
            photo = (FACES / "obama.jpg").read_bytes()
            for token in world.patients:
                for step in (
                    (
                        "POST",
                        "/api/v1/payments/methods",
                        {"payment_method": "pm_card_visa", **CONSENT},
                    ),
                    ("PUT", "/api/v1/health/face", None),
                    ("POST", "/api/v1/health/credit-line", {"terms_version": TERMS}),
                ):
                    method, path, body = step
                    raw = (
                        multipart({"consent": "true"}, {"image": ("me.jpg", photo)})
                        if body is None
                        else None
                    )
                    status, answer = setup.request(
                        "setup", method, path, token=token, body=body, raw=raw, record=False
                    )
                    if status not in (200, 201):
                        raise RuntimeError(
                            f"setting up a patient: {method} {path} {status} {answer}"
                        )
            for worker in ingests:
                if not worker.alive():
                    raise RuntimeError(f"{worker.name} exited: {worker.tail()}")

            calibration: list[tuple[str, int, float, float]] = []
            if args.calibrate:
                print(f"calibrating: each kind alone for {args.calibrate} s...", flush=True)
                calibration = calibrate(
                    world,
                    apis,
                    database_url,
                    args.calibrate,
                    random.Random(args.seed),  # noqa: S311
                )
            cpu_before = {child.name: child.cpu() for child in children}
            pg_before = postgres_cpu(database_url)
            rss_before = {api.name: api.rss_mb() for api in apis}
            print(
                f"stack up: nginx :{nginx_port} -> api1 :{api_ports[0]}, api2 :{api_ports[1]}; "
                f"localstripe :{stripe_port}; ingest1, ingest2 (MQTT {env['MQTT_URL']}, shared "
                f"group {env['MQTT_SHARED_GROUP']}); scheduler1 leads, scheduler2 stands by",
                flush=True,
            )
            print(f"driving the load for {args.seconds} s...", flush=True)
            threads: list[threading.Thread] = []

            def spawn(target: Callable[..., None], *extra: Any) -> None:
                own = random.Random(rng.random())  # noqa: S311 - a load, not a secret
                thread = threading.Thread(target=target, args=(world, own, *extra), daemon=True)
                thread.start()
                threads.append(thread)

            half = len(world.citizens) // 2
            spawn(searcher)
            spawn(searcher)
            spawn(reserver, world.citizens[:half])
            spawn(reserver, world.citizens[half:])
            spawn(hospital)
            spawn(settler)
            publisher_thread = threading.Thread(
                target=publisher,
                args=(
                    world,
                    random.Random(args.seed),  # noqa: S311 - a load, not a secret
                    env["MQTT_TOPIC_PREFIX"],
                    args.rate,
                    env["MQTT_URL"],
                ),
                daemon=True,
            )
            publisher_thread.start()

            began = time.monotonic()
            began_wall = time.time()
            api_kills: list[float] = []
            kills: list[str] = []

            def at(fraction: float) -> None:
                world.stop.wait(max(0.0, began + fraction * args.seconds - time.monotonic()))

            at(0.25)
            api_kills.append(apis[0].kill())
            kills.append(f"t={api_kills[-1] - began:.1f}s SIGKILL api1 (master and workers)")
            at(0.35)
            apis[0].start()
            wait_until_answers(apis[0], api_ports[0])
            kills.append(f"t={time.monotonic() - began:.1f}s api1 restarted")
            at(0.45)
            moment = ingests[0].kill()
            kills.append(f"t={moment - began:.1f}s SIGKILL ingest1")
            at(0.5)
            ingests[0].start()
            kills.append(f"t={time.monotonic() - began:.1f}s ingest1 restarted (same client id)")
            at(0.6)
            leader_killed = leader.kill()
            leader_killed_wall = began_wall + (leader_killed - began)
            kills.append(f"t={leader_killed - began:.1f}s SIGKILL scheduler1 (the leader)")
            took_over = standby.wait_for("scheduler is the leader", timeout=60)
            takeover = wall(str(took_over["ts"])) - leader_killed_wall
            kills.append(f"t={time.monotonic() - began:.1f}s scheduler2 leads ({takeover:.2f} s)")
            leader.start()  # back as the standby
            at(1.0)
            world.stop.set()
            ended = time.monotonic()
            ended_wall = time.time()
            for thread in threads:
                thread.join(60)
            publisher_thread.join(60)
            cpu_after = {child.name: child.cpu() for child in children}
            pg_after = postgres_cpu(database_url)
            rss_after = {api.name: api.rss_mb() for api in apis}

            # Events: wait until the workers have written everything acknowledged (or stop).
            applied, deadline = 0, time.monotonic() + 60
            while time.monotonic() < deadline:
                applied = _applied_events(database_url)
                if applied >= world.published:
                    break
                time.sleep(1)
            # Sweeps: give the reservation sweep one more interval to release expired holds.
            time.sleep(min(intervals.get(REPORTED_JOB, 15), 20))
            holds, stale = _stale_holds(database_url, intervals.get(REPORTED_JOB, 15) + 10)
            runs = _job_runs([leader, standby])
            made = work_done(database_url)
            ingest_counts = _ingest_outcomes(database_url)
            load_after = Path("/proc/loadavg").read_text().split()[:3]
        finally:
            for child in reversed(children):
                child.stop()

    seconds = ended - began
    print()
    print(f"== rehearsal {tag}, {seconds:.0f} s of load, {os.cpu_count()} cores")
    print(f"load average before: {' '.join(load_before)}; after: {' '.join(load_after)}")
    for line in kills:
        print(f"  {line}")
    print()
    print("requests through nginx (a 4xx is the app's answer; failed = 5xx or no answer):")
    print("| kind         | requests | per s  | failed | p50 ms | p99 ms |")
    by_kind: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in world.outcomes:
        by_kind[outcome.kind].append(outcome)
    for kind, outcomes in sorted(by_kind.items()):
        durations = [1000 * (o.ended - o.started) for o in outcomes if not failed(o)]
        statuses: dict[str, int] = defaultdict(int)
        for outcome in outcomes:
            statuses[f"{outcome.status} {outcome.error}".strip()] += 1
        print(
            f"| {kind:<12} | {len(outcomes):>8} | {len(outcomes) / seconds:>6.1f} | "
            f"{sum(failed(o) for o in outcomes):>6} | {percentile(durations, 0.5):>6.1f} | "
            f"{percentile(durations, 0.99):>6.1f} |  statuses {dict(sorted(statuses.items()))}"
        )
    print(f"made: {made}")
    failures = [o for o in world.outcomes if failed(o)]
    during = [o for o in failures if in_flight(o, api_kills)]
    retried = [o for o in failures if o.retried]
    print(
        f"requests failed: {len(failures)} of {len(world.outcomes)}; in flight at the API "
        f"host's kill: {len(during)}; failed otherwise: {len(failures) - len(during)}"
    )
    for o in failures:
        print(
            f"  {o.kind}: {o.status or 'no answer'} {o.error}, from t={o.started - began:.2f}s "
            f"to t={o.ended - began:.2f}s"
            + (f"; again with the same Idempotency-Key: {o.retried}" if o.retried else "")
        )
    if any(o.retried == "409" for o in retried):
        print(
            "  (409: the request killed in flight still holds its Idempotency-Key claim; "
            "core.idempotency lets a retry take it over once ABANDONED_AFTER has passed)"
        )
    lost = world.published - applied
    print(
        f"sensor events: published (acknowledged by the broker) {world.published}, "
        f"applied {applied}, lost {max(0, lost)} ({world.published / seconds:.0f} events/s)"
    )
    print(f"  the ingest workers counted: {ingest_counts}")
    missed_total = 0
    print(
        "scheduled sweeps (runs from scheduler1 / scheduler2; missed = an interval without a run):"
    )
    for job, interval in sorted(intervals.items()):
        starts = [t for t, _ in runs.get(job, []) if t <= ended_wall + 1]
        missed = missed_runs(starts, interval, ended_wall) if interval <= seconds else 0
        missed_total += missed
        first = sum(1 for _, name in runs.get(job, []) if name == "scheduler1")
        second = sum(1 for _, name in runs.get(job, []) if name == "scheduler2")
        print(f"  {job:<28} every {interval:>5} s: runs {first} / {second}, missed {missed}")
    print(
        f"unpaid holds made: {holds}; still held {intervals.get(REPORTED_JOB, 15) + 10} s after "
        f"their expiry: {stale}"
    )
    print(f"standby took over in {takeover:.2f} s (poll every {args.poll} s)")
    print("CPU seconds used during the load, per part:")
    for name in sorted(cpu_after):
        used = cpu_after[name] - cpu_before.get(name, 0.0)
        print(f"  {name:<11} {used:6.1f} s ({100 * used / seconds:5.1f} % of one core)")
    pg_used = pg_after - pg_before
    print(f"  {'postgresql':<11} {pg_used:6.1f} s ({100 * pg_used / seconds:5.1f} % of one core)")
    ingest_cpu = sum(cpu_after[n] - cpu_before[n] for n in cpu_after if n.startswith("ingest"))
    if world.published:
        print(
            f"  ingest workers: {1000 * ingest_cpu / world.published:.2f} ms of CPU per event "
            f"({world.published / ingest_cpu if ingest_cpu else 0:.0f} events/s per core)"
        )
    if calibration:
        print("each kind alone (one client, through nginx), CPU per operation:")
        print(
            "| operation                            | done | API ms | PostgreSQL ms "
            "| per API core /s |"
        )
        for label, done, api_ms, pg_ms in calibration:
            per_core = 1000 / api_ms if not math.isnan(api_ms) and api_ms else float("nan")
            print(
                f"| {label:<36} | {done:>4} | {api_ms:>6.1f} | {pg_ms:>13.1f} | {per_core:>15.1f} |"
            )
    for name in sorted(rss_before):
        print(
            f"  {name} RSS MB at start {[round(x) for x in rss_before[name]]}, "
            f"end {[round(x) for x in rss_after[name]]}"
        )
    problems = []
    if lost > 0:
        problems.append(f"{lost} sensor events lost")
    if missed_total or stale:
        problems.append(f"{missed_total} sweeps missed, {stale} holds not released")
    print("FAILED: " + "; ".join(problems) if problems else "OK: no event lost, no sweep missed")
    if problems or args.keep_logs:
        print(f"logs kept in {logs}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--port",
        type=int,
        default=8350,
        help="nginx; the API hosts and localstripe take the next three",
    )
    parser.add_argument("--database", default=os.environ.get("REHEARSE_DATABASE_URL", LOCAL))
    parser.add_argument("--rate", type=float, default=200.0, help="sensor events per second")
    parser.add_argument("--citizens", type=int, default=60)
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--sensors", type=int, default=500)
    parser.add_argument("--poll", type=float, default=1.0, help="the standby's poll, seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument(
        "--calibrate",
        type=float,
        default=10.0,
        help="seconds of each kind alone before the load, for its CPU cost (0: none)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    return rehearse(args)


if __name__ == "__main__":
    from bench import report

    # what it printed is kept in bench/results/rehearse.txt, which make bench puts in RESULTS.md
    sys.exit(
        report.recorded("rehearse", f"python -m devtools.rehearse {' '.join(sys.argv[1:])}", main)
    )
