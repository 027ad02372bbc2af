"""Availability around a point with 50,000 spaces, under gunicorn.

Targets (issue 8): p99 under 50 ms at 16 concurrent clients, and at least 0.5 of the throughput
of a bare Flask "hello" endpoint served with the same gunicorn settings, measured in the same run.

500 lots of 100 spaces (each with a sensor) are scattered within 5 km of Seoul City Hall in a
fresh PostgreSQL database; ``wrk`` (16 connections) asks
``/api/v1/parking/availability?lat&lon&radius_m=1000&starts_at&ends_at`` (about 20 lots, 2,000
spaces inside the circle), then the bare hello app, for the same duration each.

``python bench/bench_parking_availability.py [--seconds 10] [--workers 2] [--threads 8]``
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flask import Flask
from parking_bench_support import ROOT, SEOUL, bulk_lots, database, free_port, migrated_app


def hello_app() -> Flask:
    """The baseline: a bare Flask app that answers "hello"."""
    bare = Flask("hello")

    @bare.get("/hello")
    def hello() -> str:
        return "hello"

    return bare


def serve(target: str, port: int, workers: int, threads: int, env: dict[str, str]) -> Any:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    command = [
        gunicorn,
        "-w",
        str(workers),
        "-k",
        "gthread",
        "--threads",
        str(threads),
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        target,
    ]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                return process
        except urllib.error.HTTPError:
            return process  # it answers (404 is an answer)
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"gunicorn did not start: {target}")


def wrk(url: str, seconds: int, connections: int = 16) -> tuple[float, float]:
    """Requests/s and p99 latency (ms) reported by wrk."""
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")
    subprocess.run(
        [wrk_bin, "-t2", f"-c{connections}", "-d2s", url],
        check=True,
        capture_output=True,
    )
    output = subprocess.run(
        [wrk_bin, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        print(f"  !! {errors.group(1)} non-2xx answers from {url}")
    return rps, p99_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with database("postgresql") as url:
        app = migrated_app(url)
        data = bulk_lots(app, lots=500, spaces_per_lot=100)
        app.extensions["db_engine"].dispose()
        print(f"{len(data['space_ids'])} spaces in {len(data['lot_ids'])} lots")
        env = dict(os.environ, DATABASE_URL=url, LOG_LEVEL="WARNING", APP_ENV="development")
        start = (datetime.now(UTC) + timedelta(minutes=30)).replace(microsecond=0)
        query = (
            f"lat={SEOUL[0]}&lon={SEOUL[1]}&radius_m=1000"
            f"&starts_at={start.isoformat().replace('+00:00', 'Z')}"
            f"&ends_at={(start + timedelta(hours=2)).isoformat().replace('+00:00', 'Z')}"
        )
        settings = f"gunicorn -w {args.workers} -k gthread --threads {args.threads}"
        port = free_port()
        ours = serve("app:create_app()", port, args.workers, args.threads, env)
        try:
            sample = urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/v1/parking/availability?{query}"
            ).read()
            print(f"one answer: {len(sample)} bytes, {sample.count(b'lot_id')} lots")
            our_rps, our_p99 = wrk(
                f"http://127.0.0.1:{port}/api/v1/parking/availability?{query}", args.seconds
            )
        finally:
            ours.terminate()
            ours.wait(20)
        port = free_port()
        hello = serve(
            "bench.bench_parking_availability:hello_app()", port, args.workers, args.threads, env
        )
        try:
            hello_rps, hello_p99 = wrk(f"http://127.0.0.1:{port}/hello", args.seconds)
        finally:
            hello.terminate()
            hello.wait(20)
    print(f"settings  {settings}, wrk 16 connections, {args.seconds} s each")
    print(f"baseline  bare Flask hello: {hello_rps:,.0f} req/s, p99 {hello_p99:.1f} ms")
    print(
        f"ours      availability (50,000 spaces): {our_rps:,.0f} req/s, p99 {our_p99:.1f} ms"
        " (target p99 < 50 ms)"
    )
    print(f"ratio     ours / hello = {our_rps / hello_rps:.2f} (target >= 0.5)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
