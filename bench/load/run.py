"""``make load``: the mixed workload of bench/load/locustfile.py, headless, against gunicorn (the
production settings of gunicorn.conf.py) on PostgreSQL, with localstripe for Stripe.

It makes a fresh database (``flask db upgrade``, ``flask demo seed``, a simulated lot, citizens
and patients who joined pay-later), starts gunicorn on ``--port`` (8360; localstripe on the next
port), runs locust for ``--seconds`` with ``--users``, and prints the errors, the percentiles
per route, the app workers' resident memory at the start and the end, and the load average.
Exits 1 when a request failed.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from devtools.localstripe import LocalStripe  # noqa: E402
from devtools.postgres import LOCAL  # noqa: E402
from devtools.rehearse import (  # noqa: E402
    BIN,
    CONSENT,
    FACES,
    TERMS,
    Child,
    Client,
    fresh_database,
    multipart,
    production_env,
    run_checked,
    wait_until_answers,
    work_done,
)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _join_pay_later(port: int, patients: list[str]) -> None:
    """Each patient saves a card, enrols a face and joins the credit line (over HTTP)."""
    client = Client(port, [], threading.Lock())
    photo = (FACES / "obama.jpg").read_bytes()
    for token in patients:
        steps: list[tuple[str, str, dict[str, object] | None]] = [
            ("POST", "/api/v1/payments/methods", {"payment_method": "pm_card_visa", **CONSENT}),
            ("PUT", "/api/v1/health/face", None),
            ("POST", "/api/v1/health/credit-line", {"terms_version": TERMS}),
        ]
        for method, path, body in steps:
            raw = (
                multipart({"consent": "true"}, {"image": ("me.jpg", photo)})
                if body is None
                else None
            )
            status, answer = client.request(
                "setup", method, path, token=token, body=body, raw=raw, record=False
            )
            if status not in (200, 201):
                raise RuntimeError(f"setting up a patient: {method} {path} {status} {answer}")


def _report(stats_csv: Path) -> int:
    """Print the per-route table from locust's stats; returns the failures."""
    rows = list(csv.DictReader(stats_csv.open()))
    print(
        "| route                                     | requests | fails | req/s "
        "| p50 ms | p95 ms | p99 ms | max ms |"
    )
    failures = 0
    for row in rows:
        name = row["Name"] if row["Name"] != "Aggregated" else "ALL"
        if row["Name"] == "Aggregated":
            print("|" + "-" * 43 + "|")
        else:
            failures += int(row["Failure Count"])
        print(
            f"| {name[:41]:<41} | {int(row['Request Count']):>8} | "
            f"{int(row['Failure Count']):>5} | "
            f"{float(row['Requests/s']):>5.1f} | {row['50%']:>6} | {row['95%']:>6} | "
            f"{row['99%']:>6} | {float(row['Max Response Time']):>6.0f} |"
        )
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("LOAD_SECONDS", 600)))
    parser.add_argument("--users", type=int, default=int(os.environ.get("LOAD_USERS", 40)))
    parser.add_argument("--spawn-rate", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=8360)
    parser.add_argument("--database", default=os.environ.get("LOAD_DATABASE_URL", LOCAL))
    parser.add_argument("--citizens", type=int, default=200)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--sensors", type=int, default=2000)
    args = parser.parse_args()
    tag = os.urandom(4).hex()
    workdir = Path(tempfile.mkdtemp(prefix="civic-load-"))
    print(f"load {tag}: {args.users} users for {args.seconds} s; logs in {workdir}", flush=True)
    with fresh_database(args.database, tag) as url, LocalStripe(port=args.port + 1) as stripe:
        env = production_env(url, stripe.url, tag)
        env["ACCESS_TOKEN_MINUTES"] = str(args.seconds // 60 + 30)  # outlives the run
        run_checked([str(BIN / "flask"), "db", "upgrade"], env, "flask db upgrade")
        run_checked(
            [str(BIN / "flask"), "demo", "seed"], {**env, "APP_ENV": "development"}, "demo seed"
        )
        world = run_checked(
            [
                sys.executable,
                "-c",
                "from devtools.rehearse import setup_world; "
                f"setup_world({args.citizens}, {args.patients}, {args.sensors})",
            ],
            env,
            "setting up the world",
        ).splitlines()[-1]
        (workdir / "world.json").write_text(world)
        command = [
            str(BIN / "gunicorn"),
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{args.port}",
        ]
        server = Child("gunicorn", command, env, workdir)
        try:
            server.start()
            wait_until_answers(server, args.port)
            _join_pay_later(args.port, json.loads(world)["patients"])
            rss_start = server.rss_mb()
            print(f"load average before: {_loadavg()}; {os.cpu_count()} cores", flush=True)
            print(f"gunicorn RSS MB at start (master, workers): {[round(x) for x in rss_start]}")
            began = time.monotonic()
            locust = subprocess.Popen(
                [
                    str(BIN / "locust"),
                    "-f",
                    str(ROOT / "bench" / "load" / "locustfile.py"),
                    "--headless",
                    "--only-summary",
                    "--users",
                    str(args.users),
                    "--spawn-rate",
                    str(args.spawn_rate),
                    "--run-time",
                    f"{args.seconds}s",
                    "--host",
                    f"http://127.0.0.1:{args.port}",
                    "--csv",
                    str(workdir / "locust"),
                    "--loglevel",
                    "WARNING",
                ],
                env={
                    **os.environ,
                    "LOAD_WORLD": str(workdir / "world.json"),
                    "PYTHONPATH": str(ROOT),
                },
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            # The workers' memory through the run, not only at its ends: growth that levels
            # off is warm-up (caches filling), growth that keeps on is a leak.
            rss_series: list[tuple[float, list[float]]] = []
            while True:
                try:
                    locust_output = locust.communicate(timeout=max(args.seconds / 10, 5))[0]
                    break
                except subprocess.TimeoutExpired:
                    rss_series.append((time.monotonic() - began, server.rss_mb()))
            elapsed = time.monotonic() - began
            rss_end = server.rss_mb()
            load_after = _loadavg()
            made = work_done(url)
        finally:
            server.stop()
    (workdir / "locust.out").write_text(locust_output)
    print(f"\n== {args.users} users, {elapsed:.0f} s, gunicorn on PostgreSQL")
    failures = _report(workdir / "locust_stats.csv")
    start_mb, end_mb = [round(x) for x in rss_start], [round(x) for x in rss_end]
    print(f"gunicorn RSS MB (master, workers) at start {start_mb}, end {end_mb}")
    series = ", ".join(f"{at:.0f} s {[round(x) for x in mb[1:]]}" for at, mb in rss_series)
    print(f"workers' RSS MB during the run: {series}")
    print(f"load average after: {load_after}")
    print(f"made: {made}")
    errors = workdir / "locust_failures.csv"
    if errors.exists():
        for row in list(csv.DictReader(errors.open()))[:20]:
            error = row["Error"][:200]
            print(f"  error: {row['Method']} {row['Name']}: {error} x{row['Occurrences']}")
    print(f"errors: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    from bench import report

    # what it printed is kept in bench/results/load.txt, which make bench puts in RESULTS.md
    settings = " ".join(
        f"{k}={os.environ[k]}" for k in ("LOAD_SECONDS", "LOAD_USERS") if k in os.environ
    )
    sys.exit(report.recorded("load", f"{settings} python bench/load/run.py".strip(), main))
