"""The deadline sweep over 100,000 open bills, 20,000 of them due.

Targets (issue 9): mark them overdue at 20,000 bills/s or more (set-based; Stripe calls are
throttled separately), and running the sweep twice, or from two processes, charges no bill
twice.

1. A fresh database (PostgreSQL from ``TEST_DATABASE_URL``/``--database-url``, else an SQLite
   file) gets 100,000 open bills, 20,000 past their deadline.
2. ``deadlines.mark_overdue()`` (one ``UPDATE``) is timed; the baseline, measured in the same
   run on 2,000 of the same bills put back to ``open``, is the naive sweep: one transaction per
   bill (select it, check it, update it, commit).
3. Two processes then run the charging part of the sweep at once until nothing is left, with
   payments replaced by a recorder (localstripe is a stand-in for correctness, not for load):
   every idempotency key must be asked for once, and a third run afterwards asks for none.

``python bench/bench_health_sweep.py [--bills 100000] [--due 20000] [--database-url URL]``
"""

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import create_engine, insert, select, text, update
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app import create_app  # noqa: E402
from bench import report  # noqa: E402
from core import db, migrations  # noqa: E402
from core.auth.models import Organisation, User  # noqa: E402
from core.clock import utcnow  # noqa: E402
from core.config import normalise_database_url  # noqa: E402
from health.models import Bill, Visit  # noqa: E402
from health.service import deadlines, settlements  # noqa: E402

NAIVE_SAMPLE = 2_000
CHUNK = 10_000


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def make_database(server: str | None, tmp: Path) -> tuple[str, Any]:
    """A new empty database and a function that drops it."""
    if not server:
        path = tmp / "bench-health.db"
        return f"sqlite:///{path}", lambda: None
    url = make_url(normalise_database_url(server))
    name = f"bench_health_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def app_for(url: str) -> Any:
    return create_app(
        {
            "DATABASE_URL": url,
            "TESTING": True,
            "REDIS_URL": "",
            "HEALTH_AUTO_CHARGES_PER_SECOND": 0,  # payments is replaced below: no Stripe rate
            "HEALTH_AUTO_CHARGES_PER_RUN": 1_000,
        }
    )


def seed(bills: int, due: int) -> None:
    """``bills`` open bills of 1,000 citizens at one hospital, ``due`` of them past due."""
    now = utcnow()
    hospital = str(uuid.uuid4())
    db.session.execute(
        insert(Organisation).values(
            id=hospital, name="Bench Hospital", kind="hospital", created_at=now
        )
    )
    users = [str(uuid.uuid4()) for _ in range(1_000)]
    db.session.execute(
        insert(User),
        [
            {
                "id": u,
                "email": f"{u}@bench.test",
                "password_hash": "x",
                "name": "Bench",
                "role": "citizen",
                "is_active": True,
                "created_at": now,
            }
            for u in users
        ],
    )
    db.session.commit()
    for start in range(0, bills, CHUNK):
        visit_rows, bill_rows = [], []
        for n in range(start, min(start + CHUNK, bills)):
            visit_id, user = str(uuid.uuid4()), users[n % len(users)]
            issued = now - timedelta(hours=49 if n < due else 1)
            visit_rows.append(
                {
                    "id": visit_id,
                    "hospital_id": hospital,
                    "user_id": user,
                    "visited_at": issued,
                    "status": "closed",
                    "eligible": True,
                    "available_at_checkin": 1_000_000,
                    "band_version": 1,
                    "currency": "KRW",
                    "total": 10_000,
                    "created_at": issued,
                    "closed_at": issued,
                }
            )
            bill_rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "visit_id": visit_id,
                    "hospital_id": hospital,
                    "user_id": user,
                    "currency": "KRW",
                    "total": 10_000,
                    "status": "open",
                    "issued_at": issued,
                    "deadline": issued + timedelta(hours=48),
                    "auto_charge_attempts": 0,
                    "penalised": False,
                    "refunded_amount": 0,
                }
            )
        db.session.execute(insert(Visit), visit_rows)
        db.session.execute(insert(Bill), bill_rows)
        db.session.commit()
    if db.is_postgresql():
        db.session.execute(text("ANALYZE"))
        db.session.commit()


def naive_mark(ids: list[str]) -> None:
    """The baseline: one transaction per bill."""
    for bill_id in ids:
        bill = db.session.get(Bill, bill_id)
        if bill is not None and bill.status == "open" and bill.deadline <= utcnow():
            bill.status, bill.overdue_at = "overdue", utcnow()
        db.session.commit()


def record_charges(log_path: str) -> None:
    """Replace payments.charge with a recorder that answers "pending" (nothing settles)."""

    def fake_charge(*_args: Any, idempotency_key: str, **_kwargs: Any) -> Any:
        with open(log_path, "a") as log:
            log.write(idempotency_key + "\n")
        return SimpleNamespace(id=str(uuid.uuid4()), status="pending")

    settlements.payments.charge = fake_charge


def sweeper(url: str, log_path: str, start: Any) -> None:
    app = app_for(url)
    record_charges(log_path)
    start.wait()
    with app.app_context():
        while deadlines.charge_overdue() > 0:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bills", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=20_000)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL", ""))
    args = parser.parse_args()
    print("uptime:", uptime())
    tmp = Path(tempfile.mkdtemp(prefix="bench-health-"))
    url, drop = make_database(args.database_url or None, tmp)
    try:
        run(url, args.bills, args.due, tmp)
    finally:
        drop()
    print("uptime:", uptime())


def run(url: str, bills: int, due: int, tmp: Path) -> None:
    app = app_for(url)
    with app.app_context():
        migrations.upgrade()
        backend = db.engine().dialect.name
        started = time.perf_counter()
        seed(bills, due)
        print(
            f"{backend}: seeded {bills:,} open bills ({due:,} due) "
            f"in {time.perf_counter() - started:.1f} s"
        )

        started = time.perf_counter()
        marked = deadlines.mark_overdue()
        elapsed = time.perf_counter() - started
        rate = marked / elapsed
        print(
            f"set-based mark_overdue: {marked:,} bills in {elapsed * 1000:.0f} ms "
            f"= {rate:,.0f} bills/s "
            f"(target >= 20,000: {'met' if rate >= 20_000 else 'NOT met'})"
        )
        assert marked == due

        sample = list(
            db.session.scalars(select(Bill.id).where(Bill.status == "overdue").limit(NAIVE_SAMPLE))
        )
        db.session.execute(
            update(Bill).where(Bill.id.in_(sample)).values(status="open", overdue_at=None)
        )
        db.session.commit()
        started = time.perf_counter()
        naive_mark(sample)
        naive_rate = len(sample) / (time.perf_counter() - started)
        print(
            f"baseline, one transaction per bill ({len(sample):,} of them): "
            f"{naive_rate:,.0f} bills/s; "
            f"set-based is {rate / naive_rate:.0f}x"
        )
        report.figure(
            "deadline sweep, bills marked overdue", rate, "bills/s", baseline=naive_rate,
            baseline_name="one transaction per bill", target=">= 20,000 bills/s",
            met=rate >= 20_000,
        )  # fmt: skip
    app.extensions["db_engine"].dispose()

    logs = [str(tmp / f"charges-{n}.log") for n in (1, 2)]
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=sweeper, args=(url, log, start)) for log in logs]
    for worker in workers:
        worker.start()
    time.sleep(3)  # let both import and connect, then go at once
    started = time.perf_counter()
    start.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    asked = [Path(log).read_text().split() if Path(log).exists() else [] for log in logs]
    counts = Counter(key for keys in asked for key in keys)
    twice = [key for key, n in counts.items() if n > 1]
    print(
        f"two sweepers at once: {len(asked[0]):,} + {len(asked[1]):,} charges asked "
        f"in {elapsed:.1f} s "
        f"(claiming, payments replaced), {len(counts):,} distinct keys, {len(twice)} asked twice"
    )

    record_charges(logs[0])
    again = app_for(url)
    with again.app_context():
        third = deadlines.charge_overdue()
    again.extensions["db_engine"].dispose()
    print(f"a third run afterwards charged {third} bills")
    ok = not twice and len(counts) == due and third == 0
    print(f"no bill charged twice: {'yes' if ok else 'NO'}")
    report.figure(
        "two sweepers at once, bills asked for twice", len(twice), "bills",
        target="0, every due bill once, none on a third run", met=ok,
    )  # fmt: skip


if __name__ == "__main__":
    main()
