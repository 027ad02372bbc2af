"""Availability around a point with 50,000 spaces, under gunicorn.

Targets (issue 8): p99 under 50 ms at 16 concurrent clients, and at least 0.5 of the throughput
of a bare Flask "hello" endpoint served with the same gunicorn settings, measured in the same run.

500 lots of 100 spaces (each with a sensor) are scattered within 5 km of Seoul City Hall in a
fresh PostgreSQL database; ``wrk`` (16 connections) asks
``/api/v1/parking/availability?lat&lon&radius_m=1000&starts_at&ends_at`` (about 20 lots, 2,000
spaces inside the circle), then the bare hello app, for the same duration each, in turns
(``--rounds``). Both servers get the same settings: by default the production ones of
gunicorn.conf.py (sync workers, one per core: 2 here); ``--threads N`` runs gthread workers
instead, with room for two kept-alive connections per thread, as gunicorn.conf.py gives them.
Each line prints p50, p99 and the workers' CPU time per request, which the machine's load does
not hide; ``--cache-seconds 0`` measures every answer computed afresh.

``python bench/bench_parking_availability.py [--seconds 10] [--workers 2] [--threads 1]
[--cache-seconds 1] [--rounds 2] [--port P]``
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

from bench import report


def hello_app() -> Flask:
    """The baseline: a bare Flask app that answers "hello"."""
    bare = Flask("hello")

    @bare.get("/hello")
    def hello() -> str:
        return "hello"

    return bare


def serve(target: str, port: int, workers: int, threads: int, env: dict[str, str]) -> Any:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    command = [gunicorn, "-w", str(workers), *worker_class(threads)]
    command += ["-b", f"127.0.0.1:{port}", "--log-level", "warning", target]
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


def worker_class(threads: int) -> list[str]:
    """gunicorn.conf.py's choice: sync workers for one thread, gthread for more."""
    if threads == 1:
        return ["-k", "sync"]
    # gunicorn.conf.py (read from the root) sizes this for its own thread count: without room
    # beyond the threads, a gthread worker keeps no connection alive
    return ["-k", "gthread", "--threads", str(threads), "--worker-connections", str(2 * threads)]


def workers_cpu_seconds(server: Any) -> float:
    """CPU time (user + system) the server's workers have used so far."""
    pids = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(server.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, seconds: int, server: Any, connections: int = 16) -> tuple[float, ...]:
    """Requests/s, p50 and p99 latency (ms) reported by wrk, and the workers' CPU µs a request."""
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")
    subprocess.run(
        [wrk_bin, "-t2", f"-c{connections}", "-d2s", url],
        check=True,
        capture_output=True,
    )
    cpu_before = workers_cpu_seconds(server)
    output = subprocess.run(
        [wrk_bin, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    cpu = workers_cpu_seconds(server) - cpu_before
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", output).groups())  # type: ignore[union-attr]
    p99 = ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups())  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        print(f"  !! {errors.group(1)} non-2xx answers from {url}")
    return rps, p50, p99, cpu / max(requests, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=1, help="1: sync workers, as gunicorn.conf.py deploys"
    )
    parser.add_argument(
        "--cache-seconds", default="1", help="PARKING_AVAILABILITY_CACHE_SECONDS of the server"
    )
    parser.add_argument("--port", type=int, default=0, help="first of two ports (default: free)")
    parser.add_argument("--rounds", type=int, default=2, help="turns of ours then hello")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with database("postgresql") as url:
        app = migrated_app(url)
        data = bulk_lots(app, lots=500, spaces_per_lot=100)
        app.extensions["db_engine"].dispose()
        print(f"{len(data['space_ids'])} spaces in {len(data['lot_ids'])} lots")
        env = dict(
            os.environ,
            DATABASE_URL=url,
            LOG_LEVEL="WARNING",
            APP_ENV="development",
            PARKING_AVAILABILITY_CACHE_SECONDS=args.cache_seconds,
        )
        start = (datetime.now(UTC) + timedelta(minutes=30)).replace(microsecond=0)
        query = (
            f"lat={SEOUL[0]}&lon={SEOUL[1]}&radius_m=1000"
            f"&starts_at={start.isoformat().replace('+00:00', 'Z')}"
            f"&ends_at={(start + timedelta(hours=2)).isoformat().replace('+00:00', 'Z')}"
        )
        settings = f"gunicorn -w {args.workers} {' '.join(worker_class(args.threads))}"
        ours_port = args.port or free_port()
        hello_port = args.port + 1 if args.port else free_port()
        ours = serve("app:create_app()", ours_port, args.workers, args.threads, env)
        hello = serve(
            "bench.bench_parking_availability:hello_app()",
            hello_port,
            args.workers,
            args.threads,
            env,
        )
        url = f"http://127.0.0.1:{ours_port}/api/v1/parking/availability?{query}"
        rounds = []
        try:
            sample = urllib.request.urlopen(url).read()  # noqa: S310 - loopback
            print(f"one answer: {len(sample)} bytes, {sample.count(b'lot_id')} lots")
            # in turns, so a change in the machine's load weighs on both alike
            for _ in range(args.rounds):
                mine = wrk(url, args.seconds, ours)
                base = wrk(f"http://127.0.0.1:{hello_port}/hello", args.seconds, hello)
                rounds.append((mine, base, os.getloadavg()))
        finally:
            for server in (ours, hello):
                server.terminate()
                server.wait(20)

    def line(rps: float, p50: float, p99: float, cpu_us: float) -> str:
        return f"{rps:,.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {cpu_us:,.0f} us CPU/request"

    print(f"settings  {settings}, wrk 16 connections, {args.seconds} s each, in turns")
    for n, (mine, base, load) in enumerate(rounds, 1):
        print(f"round {n}   load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        print(f"baseline  bare Flask hello: {line(*base)}")
        print(
            f"ours      availability (50,000 spaces, cache {args.cache_seconds} s): {line(*mine)}"
            " (target p99 < 50 ms)"
        )
        print(f"ratio     ours / hello = {mine[0] / base[0]:.2f} (target >= 0.5)")
    # The summary takes the round with the median ratio.
    mine, base, _ = sorted(rounds, key=lambda r: r[0][0] / r[1][0])[len(rounds) // 2]
    report.figure(
        "availability around a point, 50,000 spaces", mine[0], "req/s", baseline=base[0],
        baseline_name="bare Flask hello, same gunicorn", target=">= 0.5 x hello",
        met=mine[0] / base[0] >= 0.5,
    )  # fmt: skip
    report.figure(
        "availability p99 at 16 connections", mine[2], "ms", target="< 50 ms", met=mine[2] < 50,
    )  # fmt: skip
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
