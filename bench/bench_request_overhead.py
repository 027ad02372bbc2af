"""What core charges per request, against bare Flask under the same gunicorn settings.

Starts the app under gunicorn with the README's production settings (``gunicorn.conf.py``,
APP_ENV=production, PostgreSQL in a database this script creates and drops, Redis for rate
limits) and a bare Flask "hello" under the same settings; loads each with wrk (16 connections,
~12 s) and prints req/s, p50, p99 and the ratio to hello for ``/healthz``, ``/api/v1/auth/me``
(Bearer) and ``/api/v1/payments`` (Bearer, an empty page), and for the floors of the last two
(``bench/hello_app.py``: bare Flask with the token check and the same queries on raw psycopg,
so the same round trips to PostgreSQL and none of our code), with each one's ratio to its floor.
Both servers run side by side and the endpoints are loaded in interleaved rounds (3 x 4 s each
by default); each figure printed is the median of its rounds.

    .venv/bin/python bench/bench_request_overhead.py     # or: make bench

Needs wrk (Debian: ``apt-get install -y wrk``), PostgreSQL (``BENCH_DATABASE_URL``, default
postgresql://postgres@127.0.0.1:5432/postgres, any database: the server is what matters) and
Redis (``BENCH_REDIS_URL``, default redis://127.0.0.1:6379/14). ``BENCH_SECONDS`` (per
round), ``BENCH_ROUNDS``, ``BENCH_CONNECTIONS``, ``WEB_CONCURRENCY`` and ``GUNICORN_THREADS``
change the load and the gunicorn settings; ``BENCH_PORTS`` (default 8150-8199) is where the two
servers listen. Targets (issue 11): /healthz >= 0.8 x hello;
/auth/me and /payments >= 0.5 x hello with p99 < 20 ms.
"""

import base64
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.hello_app import FLOOR_APPLICATION  # noqa: E402
from devtools.postgres import scratch_database  # noqa: E402

BIN = Path(sys.executable).parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "4"))  # per round
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
SERVER_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PORTS = os.environ.get("BENCH_PORTS", "8150-8199")  # where the two servers listen
PASSWORD = "bench-correct-horse-battery"  # noqa: S105 - a throwaway account in a throwaway db


# The floors (bench/hello_app.py): bare Flask with only the token check and the same SQL on raw
# psycopg, so the same round trips to PostgreSQL as the app's and none of our code.
FLOOR_ME = "floor: bare Flask + token check + the login session's query"
FLOOR_PAYMENTS = "floor: the same + the page's query"


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float  # gunicorn workers' CPU time per request: what the load on the machine hides


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed. On Debian/Ubuntu: apt-get install -y wrk")
        return 2
    print(
        f"load average before: {_load()}; {os.cpu_count()} cores; wrk -c{CONNECTIONS} "
        f"-d{SECONDS}s x {ROUNDS} rounds per endpoint; "
        f"WEB_CONCURRENCY={os.environ.get('WEB_CONCURRENCY', 'default')} "
        f"GUNICORN_THREADS={os.environ.get('GUNICORN_THREADS', 'default')}"
    )
    with _database() as database_url:
        env = _production_env(database_url)
        token = _prepare(env)
        bearer = {"Authorization": f"Bearer {token}"}
        with (
            _gunicorn("bench.hello_app:app", env) as (hello, hello_server),
            _gunicorn("app:create_app()", env) as (base, server),
        ):
            _check(f"{base}/api/v1/payments", bearer)
            _check(f"{hello}/floor/payments", bearer)
            targets = [
                ("hello (bare Flask)", f"{hello}/hello", {}, hello_server),
                ("GET /healthz", f"{base}/healthz", {}, server),
                ("GET /api/v1/auth/me (Bearer)", f"{base}/api/v1/auth/me", bearer, server),
                (
                    "GET /api/v1/payments (Bearer, empty page)",
                    f"{base}/api/v1/payments",
                    bearer,
                    server,
                ),
                (FLOOR_ME, f"{hello}/floor/auth/me", bearer, hello_server),
                (FLOOR_PAYMENTS, f"{hello}/floor/payments", bearer, hello_server),
            ]
            # Rounds interleave the endpoints, so that a change in the machine's load during
            # the run weighs on all of them alike; each figure is the median of its rounds.
            rounds = [[_wrk(*target) for target in targets] for _ in range(ROUNDS)]
            held = _what_workers_hold(server, database_url)
    results = [_median([run[i] for run in rounds]) for i in range(len(targets))]
    _print(results)
    print(held)
    print(f"load average after: {_load()}")
    return 0


def _median(runs: list[Result]) -> Result:
    def middle(values: list[float]) -> float:
        return statistics.median(values)

    return Result(
        name=runs[0].name,
        rps=middle([r.rps for r in runs]),
        p50_ms=middle([r.p50_ms for r in runs]),
        p99_ms=middle([r.p99_ms for r in runs]),
        errors=sum(r.errors for r in runs),
        cpu_us=middle([r.cpu_us for r in runs]),
    )


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _database() -> AbstractContextManager[str]:
    """A fresh PostgreSQL database for this run, dropped at the end."""
    return scratch_database(SERVER_URL, "civic_bench")


def _ed25519_pem() -> str:
    """A fresh signing key for civic's certificates (a production environment needs one)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _production_env(database_url: str) -> dict[str, str]:
    """The environment of a production deployment (real-looking secrets; nothing calls Stripe)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "SCHEDULER_"))}
    env.update(
        APP_ENV="production",
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        SECRET_KEY=uuid.uuid4().hex + uuid.uuid4().hex,
        JWT_SECRET_KEY=uuid.uuid4().hex + uuid.uuid4().hex,
        STRIPE_SECRET_KEY="sk_test_bench_not_called",
        STRIPE_WEBHOOK_SECRET="whsec_bench_not_called",
        CIVIC_SIGNING_KEY=_ed25519_pem(),
        FACE_KEY=base64.b64encode(os.urandom(32)).decode(),
        LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    return env


def _prepare(env: dict[str, str]) -> str:
    """Migrate the database and log a citizen in (in a child process, with the server's
    environment); returns the access token."""
    script = (
        "from app import create_app\n"
        "from core import migrations\n"
        "from core.auth import service\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    migrations.upgrade()\n"
        f"    service.create_user(email='bench@example.test', password={PASSWORD!r}, name='B')\n"
        f"    print(service.login('bench@example.test', {PASSWORD!r}).access_token)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"could not prepare the database:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def _free_port() -> int:
    """A free loopback port in ``BENCH_PORTS`` (first-last; default 8150-8199)."""
    first, last = (int(part) for part in PORTS.split("-"))
    for port in range(first, last + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"no free port in {PORTS}")


def _what_workers_hold(server: subprocess.Popen[bytes], database_url: str) -> str:
    """Resident memory of each worker and the PostgreSQL connections they keep open."""
    rss = subprocess.run(
        ["ps", "-o", "rss=", "--ppid", str(server.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    engine = create_engine(database_url)
    with engine.connect() as connection:
        connections = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND application_name <> :floor"
            ),
            {"floor": FLOOR_APPLICATION},
        ).scalar_one()
    engine.dispose()
    megabytes = ", ".join(f"{int(kb) / 1024:.0f} MB" for kb in rss)
    return (
        f"app workers: {len(rss)}, resident memory {megabytes}; "
        f"PostgreSQL connections held by them after the load: {connections}"
    )


@contextmanager
def _gunicorn(target: str, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """gunicorn with gunicorn.conf.py serving ``target`` on a free loopback port."""
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            target,
        ],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process, log.name)
        yield base, process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        log.close()
        os.unlink(log.name)


def _wait_until_up(base: str, process: subprocess.Popen[bytes], log: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited:\n{Path(log).read_text()[-3000:]}")
        try:
            urllib.request.urlopen(base + "/", timeout=1)  # noqa: S310 - loopback
            return
        except urllib.error.HTTPError:
            return  # it answers (404 is fine)
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer within 30 s")


def _check(url: str, headers: dict[str, str]) -> None:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        if response.status != 200:
            raise SystemExit(f"{url} answered {response.status}")


def _workers_cpu_seconds(server: subprocess.Popen[bytes]) -> float:
    """CPU time (user + system) the server's workers have used so far."""
    pids = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(server.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _wrk(name: str, url: str, headers: dict[str, str], server: subprocess.Popen[bytes]) -> Result:
    command = ["wrk", f"-t{min(2, CONNECTIONS)}", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency"]
    for header, value in headers.items():
        command += ["-H", f"{header}: {value}"]
    cpu_before = _workers_cpu_seconds(server)
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=SECONDS + 60
    ).stdout
    cpu = _workers_cpu_seconds(server) - cpu_before
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    if socket_errors:
        print(f"  {name}: socket errors: {socket_errors.group(1)}")
    return Result(
        name=name,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        p99_ms=_ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),  # type: ignore[union-attr]
        errors=int(errors.group(1)) if errors else 0,
        cpu_us=cpu / max(requests, 1) * 1e6,
    )


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _print(results: list[Result]) -> None:
    hello = results[0].rps
    targets = {"GET /healthz": 0.8}
    by_name = {result.name: result for result in results}
    floors = {
        "GET /api/v1/auth/me (Bearer)": by_name.get(FLOOR_ME),
        "GET /api/v1/payments (Bearer, empty page)": by_name.get(FLOOR_PAYMENTS),
    }
    print()
    print("| endpoint | req/s | x hello | x its floor | p50 | p99 | worker CPU/request | target |")
    print("|---|---|---|---|---|---|---|---|")
    for result in results:
        ratio = result.rps / hello
        floor = floors.get(result.name)
        of_floor = f"{result.rps / floor.rps:.2f}" if floor else ""
        if result is results[0]:
            target = ""
        elif result.name.startswith("floor:"):
            target = "(what no code of ours can beat here)"
            report.figure(
                f"{result.name}, req/s", result.rps, "req/s", baseline=hello,
                baseline_name="bare Flask hello, same gunicorn",
            )  # fmt: skip
        else:
            minimum = targets.get(result.name, 0.5)
            met = ratio >= minimum and (minimum == 0.8 or result.p99_ms < 20)
            wanted = f">= {minimum} x" + ("" if minimum == 0.8 else ", p99 < 20 ms")
            target = f"{wanted}: {'met' if met else 'MISSED'}"
            report.figure(
                f"{result.name}, req/s", result.rps, "req/s", baseline=hello,
                baseline_name="bare Flask hello, same gunicorn", target=wanted, met=met,
            )  # fmt: skip
            if floor:
                report.figure(
                    f"{result.name}, req/s against its floor", result.rps, "req/s",
                    baseline=floor.rps, baseline_name=floor.name,
                )  # fmt: skip
            if minimum != 0.8:
                report.figure(
                    f"{result.name}, p99", result.p99_ms, "ms", target="< 20 ms",
                    met=result.p99_ms < 20,
                )  # fmt: skip
        errors = f" ({result.errors} non-2xx!)" if result.errors else ""
        print(
            f"| {result.name}{errors} | {result.rps:,.0f} | {ratio:.2f} | {of_floor} | "
            f"{result.p50_ms:.2f} ms | {result.p99_ms:.2f} ms | {result.cpu_us:.0f} us | {target} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
