"""200 concurrent reservation attempts for one space and one window: exactly one succeeds,
on PostgreSQL (exclusion constraint) and on SQLite (check and insert in one BEGIN IMMEDIATE).

Each backend gets a fresh database, one lot whose first hour is free (so the winner needs no
card), 20 citizens, and a gunicorn server (4 workers x 8 threads); 200 threads, released
together by a barrier, POST ``/api/v1/parking/reservations`` for the same space and window over
real HTTP. The baseline is the rule itself: 1 success and 199 conflicts.

``python bench/bench_parking_reservations.py [--attempts 200]``
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parking_bench_support import ROOT, bulk_lots, database, free_port, migrated_app
from sqlalchemy import update

from bench import report

PASSWORD = "bench-password-1"  # noqa: S105 - a throw-away account in a throw-away database
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def setup(url: str, citizens: int) -> tuple[str, list[str]]:
    """One lot with a free first hour; the space to fight over and the citizens' tokens."""
    from core import db
    from core.auth import service as auth
    from parking.models import ParkingTariff

    app = migrated_app(url)
    data = bulk_lots(app, lots=1, spaces_per_lot=10)
    tokens = []
    with app.app_context():
        db.session.execute(update(ParkingTariff).values(free_minutes=60))
        db.session.commit()
        for n in range(citizens):
            email = f"bench-{n}@example.test"
            auth.create_user(email=email, password=PASSWORD, name=f"Bench {n}")
            tokens.append(auth.login(email, PASSWORD).access_token)
    app.extensions["db_engine"].dispose()
    return data["space_ids"][0], tokens


def serve(url: str, port: int) -> Any:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    # A throw-away database with the development secrets: under gunicorn an unset APP_ENV is
    # production, which refuses them.
    env = dict(
        os.environ, APP_ENV="test", DATABASE_URL=url, LOG_LEVEL="WARNING", RATELIMIT_ENABLED="0"
    )
    process = subprocess.Popen(
        [
            gunicorn,
            "-w",
            "4",
            "-k",
            "gthread",
            "--threads",
            "8",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "app:create_app()",
        ],
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            OPENER.open(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("gunicorn did not start")


def race(port: int, space_id: str, tokens: list[str], attempts: int) -> tuple[Counter[int], float]:
    start = (datetime.now(UTC) + timedelta(minutes=30)).replace(microsecond=0)
    body = json.dumps(
        {
            "space_id": space_id,
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(minutes=30)).isoformat(),
            "vehicle_plate": "12가3456",
            "payment_method": "pm_card_visa",
        }
    ).encode()
    barrier = threading.Barrier(attempts)
    statuses: Counter[int] = Counter()

    def attempt(index: int) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/parking/reservations",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {tokens[index % len(tokens)]}",
            },
        )
        barrier.wait()
        try:
            with OPENER.open(request, timeout=120) as response:
                statuses[response.status] += 1
        except urllib.error.HTTPError as error:
            statuses[error.code] += 1
        except OSError:
            statuses[0] += 1

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(attempts)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return statuses, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--attempts", type=int, default=200)
    parser.add_argument("--backends", default="postgresql,sqlite")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    ok = True
    for backend in args.backends.split(","):
        with database(backend) as url:
            space_id, tokens = setup(url, citizens=20)
            port = free_port()
            server = serve(url, port)
            try:
                statuses, elapsed = race(port, space_id, tokens, args.attempts)
            finally:
                server.terminate()
                server.wait(20)
        exactly_one = statuses[201] == 1 and statuses[409] == args.attempts - 1
        ok &= exactly_one
        print(
            f"{backend:<10} {args.attempts} concurrent attempts in {elapsed:.2f} s: "
            f"{statuses[201]} created, {statuses[409]} conflicts, "
            f"other {dict((k, v) for k, v in statuses.items() if k not in (201, 409))} -> "
            f"{'exactly one: OK' if exactly_one else 'FAILED'} (baseline: 1 of {args.attempts})"
        )
        report.figure(
            f"{backend}: reservations created of {args.attempts} concurrent attempts",
            statuses[201], "created", target="exactly 1, the rest 409", met=exactly_one,
        )  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
