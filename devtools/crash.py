"""Crash safety: SIGKILL the real processes at random moments on PostgreSQL, restart them, and
check from the database and from localstripe that nothing was done twice, lost or half-written.

``python -m devtools.crash [--rounds 10] [--scenario scheduler|api|ingest|all] [--seed N]
[--database URL] [--mqtt URL]`` (``make crash``) makes a fresh database on the local PostgreSQL
(``devtools.postgres``), migrates it, starts localstripe, runs each scenario and drops the
database. Each scenario prints the counts it checked and every violation; the exit status is
non-zero when there is one.

- **scheduler**: due hospital bills (past their 48-hour deadline) and expired parking holds;
  ``flask scheduler run`` SIGKILLed at a random moment after it took the leader lock, then the
  same sweeps run to the end (:func:`sweep_to_the_end`). See :func:`check_scheduler`.
- **api**: gunicorn's worker SIGKILLed while citizens reserve and cancel under
  ``Idempotency-Key`` retries (the master starts a new worker). See :func:`check_api`.
- **ingest**: ``flask parking ingest`` SIGKILLed while it ingests sensors publishing with QoS 1,
  and restarted. See :func:`check_ingest`.

Time is compressed, not faked: the children run with ``PAYMENT_RECONCILE_AFTER_SECONDS=1``, and
after each kill what it left (settlements without a payment, outbox messages, abandoned
``Idempotency-Key`` claims) is aged past the wait a real restart or retry would sit out.
"""

import argparse
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from devtools.localstripe import LocalStripe
from devtools.postgres import LOCAL, probe, scratch_database
from devtools.service import ROOT, exit_on_sigterm

FLASK = str(Path(sys.executable).parent / "flask")
# Settings every child process gets (on top of the environment, minus production secrets).
CHILD_SETTINGS = {
    "FLASK_APP": "app",
    "APP_ENV": "development",
    "REDIS_URL": "",
    "LOG_LEVEL": "WARNING",
    "SCHEDULER_EMBEDDED": "0",
    "PAYMENT_RECONCILE_AFTER_SECONDS": "1",
    "PYTHONUNBUFFERED": "1",  # a killed child's last lines reach its log
}
SCRUBBED = ("APP_ENV", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "SECRET_KEY", "DATABASE_URL")
PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - throwaway citizens of a throwaway database


# --- the parts: a database, localstripe, child processes ---------------------------------


def fresh_database(server_url: str) -> contextlib.AbstractContextManager[str]:
    """A new empty database on the server of ``server_url``; dropped at the end."""
    return scratch_database(server_url, "civic_crash")


@dataclass
class Stack:
    """What every scenario runs against: the database and localstripe."""

    database_url: str
    stripe: LocalStripe
    log_dir: Path

    def env(self, **extra: str) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        environment.update(CHILD_SETTINGS)
        environment.update(DATABASE_URL=self.database_url, STRIPE_API_BASE=self.stripe.url)
        environment.update(extra)
        return environment

    def app(self, **settings: Any) -> Any:
        """The app in this process, on the crash database (seeding, the last sweeps)."""
        from app import create_app

        return create_app(
            {
                "TESTING": True,
                "DATABASE_URL": self.database_url,
                "STRIPE_API_BASE": self.stripe.url,
                "REDIS_URL": "",
                "DEFAULT_LOCALE": "en",
                "LOG_LEVEL": "ERROR",
                **settings,
            }
        )

    def engine(self) -> Engine:
        from core.config import normalise_database_url

        return create_engine(normalise_database_url(self.database_url))

    def spawn(self, name: str, command: list[str], **extra: str) -> subprocess.Popen[bytes]:
        """Start a child process; its output goes to a log file (printed on failure)."""
        log = (self.log_dir / f"{name}.log").open("ab")
        return subprocess.Popen(  # noqa: S603 - our own commands
            command,
            cwd=ROOT,
            env=self.env(**extra),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def sigkill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and its children (its own session), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            sigkill(process)


@dataclass
class Report:
    """What a scenario checked: named counts, and the violations found."""

    scenario: str
    counts: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, name: str, value: int) -> None:
        self.counts[name] = value

    def expect(self, ok: bool, message: str) -> None:
        if not ok:
            self.violations.append(message)

    def print(self) -> None:
        print(f"\n== crash scenario: {self.scenario}")
        for note in self.notes:
            print(f"   {note}")
        for name, value in self.counts.items():
            print(f"   {name:<64} {value}")
        verdict = "OK" if not self.violations else f"{len(self.violations)} VIOLATION(S)"
        print(f"   {verdict}")
        for violation in self.violations[:50]:
            print(f"   ! {violation}")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


# --- scenario 1: the scheduler in the middle of its sweeps ---------------------------------


@dataclass(frozen=True)
class SchedulerSeed:
    bills: dict[str, int]  # due bill id -> total
    holds: list[str]  # expired hold ids


def seed_scheduler(stack: Stack, citizens: int, bills_each: int, holds: int) -> SchedulerSeed:
    """Citizens with a saved card and bills past their deadline; unpaid holds past their time."""
    from core import db
    from core.auth import service as auth
    from core.clock import utcnow
    from health.models import Bill, Visit
    from parking.models import ParkingLot, ParkingSpace, ParkingTariff, Reservation
    from payments import service as payments

    app = stack.app()
    bills: dict[str, int] = {}
    hold_ids: list[str] = []
    with app.app_context():
        now = utcnow()
        hospital = auth.create_organisation("Crash General", "hospital")
        operator = auth.create_organisation("Crash Parking", "parking_operator")
        consent = app.config["OFF_SESSION_CONSENT_VERSION"]
        users = []
        for number in range(citizens):
            user = auth.create_user(
                email=f"crash-{number}@example.test",
                password=PASSWORD,
                name="Crash",
                role="citizen",
            )
            users.append(user.id)
            payments.save_card(user.id, "pm_card_visa", consent)
        for number in range(citizens * bills_each):
            user_id = users[number % citizens]
            total = 1_000 + 10 * number  # each bill its own amount
            issued = now - timedelta(hours=49)
            visit = Visit(
                hospital_id=hospital.id,
                user_id=user_id,
                visited_at=issued,
                status="closed",
                eligible=True,
                band_version=1,
                currency="KRW",
                total=total,
                closed_at=issued,
            )
            db.session.add(visit)
            db.session.flush()
            bill = Bill(
                visit_id=visit.id,
                hospital_id=hospital.id,
                user_id=user_id,
                currency="KRW",
                total=total,
                status="open",
                issued_at=issued,
                deadline=issued + timedelta(hours=48),
            )
            db.session.add(bill)
            db.session.flush()
            bills[bill.id] = total
        lot = ParkingLot(
            operator_id=operator.id, name="Crash lot", address="1 Crash St", lat=37.5, lon=127.0
        )
        db.session.add(lot)
        db.session.flush()
        db.session.add(
            ParkingTariff(lot_id=lot.id, unit_minutes=10, unit_price=500, currency="KRW")
        )
        hold_age = timedelta(minutes=app.config["PARKING_HOLD_MINUTES"] + 1)
        for number in range(holds):
            space = ParkingSpace(lot_id=lot.id, code=f"C{number:04d}")
            db.session.add(space)
            db.session.flush()
            hold = Reservation(
                user_id=users[number % citizens],
                lot_id=lot.id,
                space_id=space.id,
                starts_at=now + timedelta(hours=1),
                ends_at=now + timedelta(hours=2),
                vehicle_plate=f"12가{number:04d}",
                status="held",
                quote_amount=3_000,
                currency="KRW",
                created_at=now - hold_age,
                updated_at=now - hold_age,
            )
            db.session.add(hold)
            db.session.flush()
            hold_ids.append(hold.id)
        db.session.commit()
        db.session.remove()
    app.extensions["db_engine"].dispose()
    return SchedulerSeed(bills, hold_ids)


def _scalar(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar() or 0)


def age_stalled_settlements(engine: Engine) -> int:
    """Move the settlements a kill left without a payment past the stall limit, and the
    outbox messages it left undelivered past their retry time (the time a real restart waits
    before it resumes them), so the next run resumes them now."""
    from health.service.deadlines import STALLED_AFTER

    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE outbox_messages SET next_attempt_at = now() - interval '1 second' "
                "WHERE delivered_at IS NULL"
            )
        )
        result = connection.execute(
            text(
                "UPDATE health_settlements SET created_at = created_at - make_interval(secs => :s) "
                "WHERE status = 'pending' AND payment_id IS NULL"
            ),
            {"s": STALLED_AFTER.total_seconds() + 60},
        )
        return int(result.rowcount)


SWEEPS_TO_THE_END = (
    "health.bill_deadlines",
    "payments.reconcile",
    "core.outbox.deliver",
    "parking.reservations",
)


def is_leader(engine: Engine) -> bool:
    """True while a scheduler of this database holds the leader lock (it is sweeping)."""
    from core.scheduler import ADVISORY_LOCK_KEY

    return bool(
        _scalar(
            engine,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND objid = :key",
            key=ADVISORY_LOCK_KEY,
        )
    )


def _leading_or_gone(process: subprocess.Popen[bytes], engine: Engine) -> bool:
    return process.poll() is not None or is_leader(engine)


def quiet(engine: Engine) -> bool:
    """Nothing left for the sweeps: no open payment, pending settlement, claimable overdue
    bill, held reservation past its time, or undelivered outbox message."""
    return not _scalar(
        engine,
        "SELECT (SELECT count(*) FROM payments WHERE status IN "
        "('pending', 'requires_action', 'processing'))"
        " + (SELECT count(*) FROM health_settlements WHERE status = 'pending')"
        " + (SELECT count(*) FROM health_bills WHERE status IN ('open', 'overdue')"
        "    AND settlement_id IS NULL AND deadline < now())"
        " + (SELECT count(*) FROM parking_reservations WHERE status = 'held')"
        " + (SELECT count(*) FROM outbox_messages WHERE delivered_at IS NULL)",
    )


def sweep_to_the_end(stack: Stack, engine: Engine, passes: int = 6) -> int:
    """After the last kill: run the sweeps (the same jobs, in this process) until nothing is
    left to do; returns the passes it took."""
    from core import scheduler

    app = stack.app(HEALTH_AUTO_CHARGES_PER_SECOND=0, PAYMENT_RECONCILE_AFTER_SECONDS=1)
    jobs = {job.id: job for job in scheduler.jobs_of(app)}
    try:
        for number in range(1, passes + 1):
            age_stalled_settlements(engine)
            time.sleep(1.1)  # payments reconciles what has been open for a second
            for job_id in SWEEPS_TO_THE_END:
                if scheduler.run_job(app, jobs[job_id]) is None:
                    raise RuntimeError(f"{job_id} failed after the kills")
            if quiet(engine):
                return number
    finally:
        app.extensions["db_engine"].dispose()
    return passes


def scenario_scheduler(
    stack: Stack,
    rounds: int,
    rng: random.Random,
    *,
    citizens: int = 10,
    bills_each: int = 20,
    holds: int = 50,
    rate: float = 10.0,
    per_run: int = 25,
    kill_within: float = 4.0,
) -> Report:
    report = Report("scheduler (48-hour deadline sweep, automatic charge, reservation sweep)")
    seed = seed_scheduler(stack, citizens, bills_each, holds)
    engine = stack.engine()
    settings = {
        "HEALTH_AUTO_CHARGES_PER_SECOND": str(rate),
        "HEALTH_AUTO_CHARGES_PER_RUN": str(per_run),
    }
    kills = 0
    for number in range(1, rounds + 1):
        process = stack.spawn("scheduler", [FLASK, "scheduler", "run", "--poll", "1"], **settings)
        leading = partial(_leading_or_gone, process, engine)
        wait_for(leading, 120, "leadership")
        if process.poll() is not None:
            raise RuntimeError(f"the scheduler exited ({process.returncode}); see {stack.log_dir}")
        after = rng.uniform(0, kill_within)
        time.sleep(after)
        sigkill(process)
        kills += 1
        wait_for(lambda: not is_leader(engine), 30, "the dead leader's lock to go")
        charged = _scalar(engine, "SELECT count(*) FROM payments WHERE status = 'succeeded'")
        aged = age_stalled_settlements(engine)
        report.notes.append(
            f"round {number}: SIGKILL {after:.2f}s into leadership; {charged} charges "
            f"succeeded so far; {aged} stalled settlement(s) aged for the restart"
        )
    passes = sweep_to_the_end(stack, engine)
    report.notes.append(f"then the sweeps ran to the end in {passes} pass(es)")
    report.count("SIGKILLs of `flask scheduler run`", kills)
    check_scheduler(stack, engine, seed, report)
    engine.dispose()
    return report


def check_scheduler(stack: Stack, engine: Engine, seed: SchedulerSeed, report: Report) -> None:
    intents = stack.stripe.list("payment_intents")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, status, settlement_id, total, auto_charge_attempts FROM health_bills")
        ).all()
        links = connection.execute(
            text("SELECT settlement_id, bill_id FROM health_settlement_bills")
        ).all()
        settlements = {
            row.id: row
            for row in connection.execute(
                text("SELECT id, status, payment_id, kind, amount FROM health_settlements")
            )
        }
        payments = {
            row.id: row
            for row in connection.execute(
                text("SELECT id, status, reference, amount, stripe_payment_intent_id FROM payments")
            )
        }
        ledger = Counter(
            row.payment_id
            for row in connection.execute(
                text("SELECT payment_id FROM payment_ledger WHERE kind = 'charge'")
            )
        )
        holds = {
            row.id: row
            for row in connection.execute(
                text("SELECT id, status, closed_reason FROM parking_reservations")
            )
        }
        undelivered = connection.execute(
            text("SELECT count(*) FROM outbox_messages WHERE delivered_at IS NULL")
        ).scalar()
        errors = [
            f"{row.topic}->{row.subscriber}: {row.last_error}"
            for row in connection.execute(
                text(
                    "SELECT topic, subscriber, last_error FROM outbox_messages "
                    "WHERE delivered_at IS NULL"
                )
            )
        ]
        penalties = connection.execute(
            text("SELECT count(*) FROM civic_score_events WHERE reason = 'hospital_bill_overdue'")
        ).scalar()
    bills_of: dict[str, list[str]] = {}
    for link in links:
        bills_of.setdefault(link.settlement_id, []).append(link.bill_id)
    status = {row.id: row for row in rows}

    # Charges at Stripe, per bill: succeeded PaymentIntents whose settlement pays that bill.
    succeeded_per_bill: Counter[str] = Counter()
    intents_per_payment: Counter[str] = Counter()
    for intent in intents:
        metadata = intent.get("metadata") or {}
        assert isinstance(metadata, dict)
        payment_id = str(metadata.get("payment_id", ""))
        intents_per_payment[payment_id] += 1
        report.expect(payment_id in payments, f"PaymentIntent {intent['id']} has no payment row")
        if intent.get("status") == "succeeded":
            for bill_id in bills_of.get(str(metadata.get("reference", "")), []):
                succeeded_per_bill[bill_id] += 1
    for bill_id, total in seed.bills.items():
        times = succeeded_per_bill[bill_id]
        report.expect(times == 1, f"bill {bill_id} charged {times} times at Stripe")
        bill = status[bill_id]
        report.expect(bill.status == "settled", f"bill {bill_id} is {bill.status}, not settled")
        settlement = settlements.get(bill.settlement_id)
        report.expect(
            settlement is not None and settlement.status == "succeeded",
            f"settled bill {bill_id} has no succeeded settlement",
        )
        if settlement is not None and settlement.payment_id:
            payment = payments.get(settlement.payment_id)
            report.expect(
                payment is not None and payment.amount == total and payment.status == "succeeded",
                f"bill {bill_id}: its payment is missing, of another amount, or not succeeded",
            )
    for payment_id, payment in payments.items():
        report.expect(
            intents_per_payment[payment_id] <= 1,
            f"payment {payment_id} has {intents_per_payment[payment_id]} PaymentIntents",
        )
        expected = 1 if payment.status == "succeeded" else 0
        report.expect(
            ledger[payment_id] == expected,
            f"payment {payment_id} ({payment.status}) has {ledger[payment_id]} ledger entries",
        )
        report.expect(
            payment.status in ("succeeded", "failed", "canceled"),
            f"payment {payment_id} left {payment.status}",
        )
    for settlement_id, settlement in settlements.items():
        paid = bills_of.get(settlement_id, [])
        report.expect(bool(paid), f"settlement {settlement_id} has no bills")
        report.expect(
            settlement.amount == sum(status[b].total for b in paid),
            f"settlement {settlement_id}: amount is not its bills' total",
        )
        report.expect(settlement.status != "pending", f"settlement {settlement_id} left pending")
    attempts: Counter[str] = Counter()
    for settlement_id, paid in bills_of.items():
        if settlements[settlement_id].kind == "automatic":
            attempts.update(paid)
    for bill_id in seed.bills:
        report.expect(
            status[bill_id].auto_charge_attempts == attempts[bill_id],
            f"bill {bill_id}: {status[bill_id].auto_charge_attempts} attempts counted, "
            f"{attempts[bill_id]} automatic settlements",
        )
    for hold_id in seed.holds:
        hold = holds[hold_id]
        report.expect(
            (hold.status, hold.closed_reason) == ("expired", "hold_expired"),
            f"hold {hold_id} is {hold.status} ({hold.closed_reason})",
        )
    report.expect(undelivered == 0, f"{undelivered} outbox messages undelivered: {errors[:3]}")
    report.expect(penalties == 0, f"{penalties} overdue penalties posted (every card is good)")

    charged_once = sum(1 for b in seed.bills if succeeded_per_bill[b] == 1)
    report.count("due bills seeded", len(seed.bills))
    report.count("due bills charged exactly once (succeeded PaymentIntents)", charged_once)
    report.count("PaymentIntents at localstripe", len(intents))
    report.count("payment rows", len(payments))
    report.count("settlements (automatic), each with its bills and their total", len(settlements))
    report.count(
        "bills whose attempt counter matches their settlements",
        sum(1 for b in seed.bills if status[b].auto_charge_attempts == attempts[b]),
    )
    report.count("ledger charge entries", sum(ledger.values()))
    report.count("expired holds seeded", len(seed.holds))
    report.count(
        "expired holds released once (expired, hold_expired)",
        sum(1 for h in seed.holds if holds[h].status == "expired"),
    )
    report.count("outbox messages undelivered", int(undelivered or 0))
    report.count("overdue penalties posted", int(penalties or 0))


# --- scenario 2: an API worker in the middle of reservations ------------------------------

IN_PROGRESS = "still being processed"  # core.idempotency's 409 while the first request runs


@dataclass
class Sent:
    """One request sent under an Idempotency-Key until it got a definitive answer."""

    name: str
    path: str
    key: str
    body: dict[str, Any] | None
    who: int  # which citizen sent it
    status: int = 0
    answer: Any = None
    retries: int = 0


@dataclass(frozen=True)
class ApiSeed:
    tokens: list[str]
    lot_id: str


def seed_api(stack: Stack, citizens: int, spaces: int) -> ApiSeed:
    """Citizens with a saved card and an access token; a lot with a tariff."""
    from core import db
    from core.auth import service as auth
    from parking.models import ParkingLot, ParkingSpace, ParkingTariff
    from payments import service as payments

    app = stack.app(ACCESS_TOKEN_MINUTES=240)
    tokens = []
    with app.app_context():
        consent = app.config["OFF_SESSION_CONSENT_VERSION"]
        operator = auth.create_organisation("Crash API Parking", "parking_operator")
        for number in range(citizens):
            email = f"crash-api-{number}@example.test"
            user = auth.create_user(email=email, password=PASSWORD, name="Crash", role="citizen")
            payments.save_card(user.id, "pm_card_visa", consent)
            tokens.append(auth.login(email, PASSWORD).access_token)
        lot = ParkingLot(
            operator_id=operator.id, name="API lot", address="2 Crash St", lat=37.5, lon=127.0
        )
        db.session.add(lot)
        db.session.flush()
        db.session.add(
            ParkingTariff(lot_id=lot.id, unit_minutes=10, unit_price=500, currency="KRW")
        )
        for number in range(spaces):
            db.session.add(ParkingSpace(lot_id=lot.id, code=f"A{number:04d}"))
        db.session.commit()
        lot_id = lot.id
        db.session.remove()
    app.extensions["db_engine"].dispose()
    return ApiSeed(tokens, lot_id)


class Client:
    """A citizen's app: every POST under an Idempotency-Key, retried with the same key and body
    after a dropped connection, a 5xx, a 429 or "still being processed", until it is answered."""

    def __init__(self, base: str, token: str) -> None:
        import requests

        self._session = requests.Session()
        self._session.trust_env = False  # loopback: never through a proxy
        self._session.headers.update({"Authorization": f"Bearer {token}", "Accept-Language": "en"})
        self._base = base

    def send(self, sent: Sent) -> tuple[int, Any]:
        response = self._session.post(
            self._base + sent.path,
            json=sent.body,
            headers={"Idempotency-Key": sent.key},
            timeout=30,
        )
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def until_answered(self, sent: Sent, give_up: float = 600) -> Sent:
        import requests

        deadline = time.monotonic() + give_up
        while time.monotonic() < deadline:
            try:
                status, answer = self.send(sent)
            except requests.RequestException:
                sent.retries += 1
                time.sleep(0.2)
                continue
            transient = status >= 500 or status == 429
            if transient or (status == 409 and IN_PROGRESS in str(answer)):
                sent.retries += 1
                time.sleep(0.3)
                continue
            sent.status, sent.answer = status, answer
            return sent
        raise RuntimeError(f"{sent.name} {sent.key} was never answered")


def _workers(master: int) -> list[int]:
    import psutil

    try:
        return [child.pid for child in psutil.Process(master).children()]
    except psutil.NoSuchProcess:
        return []


def age_abandoned_claims(engine: Engine, killed_at: float) -> int:
    """The claims of the requests the kill cut off, aged past ``ABANDONED_AFTER`` (what a real
    client waits before its retry takes the key over). Only claims made before the kill: with
    one worker, none of them can still be running."""
    from core.idempotency import ABANDONED_AFTER

    with engine.begin() as connection:
        result = connection.execute(
            text(
                "UPDATE idempotency_keys SET created_at = created_at - make_interval(secs => :s) "
                "WHERE completed_at IS NULL AND created_at <= to_timestamp(:killed)"
            ),
            {"s": ABANDONED_AFTER.total_seconds() + 60, "killed": killed_at},
        )
        return int(result.rowcount)


def scenario_api(
    stack: Stack,
    rounds: int,
    rng: random.Random,
    *,
    citizens: int = 6,
    spaces: int = 40,
    port: int | None = None,
    kill_within: tuple[float, float] = (0.5, 3.0),
) -> Report:
    from devtools.service import free_port

    report = Report("API worker (gunicorn) under reservations and cancellations (refunds)")
    seed = seed_api(stack, citizens, spaces)
    engine = stack.engine()
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    server = stack.spawn(
        "gunicorn",
        [gunicorn, "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="4",
        ACCESS_TOKEN_MINUTES="240",  # noqa: S106 - a lifetime, not a password
    )
    done = threading.Event()
    sent: list[Sent] = []
    lock = threading.Lock()
    failures: list[str] = []
    starts = time.time() + 86_400

    def citizen(number: int, token: str) -> None:
        client = Client(base, token)
        local = random.Random(rng.random())  # noqa: S311 - not for secrets
        made = 0
        try:
            while not done.is_set():
                made += 1
                plate = f"C{number:02d}-{made:04d}"
                begins = starts + 3600 * local.randrange(0, 100)
                reserve = Sent(
                    "reserve",
                    "/api/v1/parking/reservations",
                    f"crash-{uuid.uuid4()}",
                    {
                        "lot_id": seed.lot_id,
                        "starts_at": _iso(begins),
                        "ends_at": _iso(begins + 1800),
                        "vehicle_plate": plate,
                    },
                    number,
                )
                client.until_answered(reserve)
                with lock:
                    sent.append(reserve)
                if reserve.status != 201 or not isinstance(reserve.answer, dict):
                    continue
                reservation_id = reserve.answer["id"]
                cancel = Sent(
                    "cancel",
                    f"/api/v1/parking/reservations/{reservation_id}/cancel",
                    f"crash-{uuid.uuid4()}",
                    None,
                    number,
                )
                client.until_answered(cancel)
                with lock:
                    sent.append(cancel)
        except Exception as error:  # reported, not raised: the other threads go on
            failures.append(f"citizen {number}: {type(error).__name__}: {error}")

    threads = [
        threading.Thread(target=citizen, args=(n, t), daemon=True)
        for n, t in enumerate(seed.tokens)
    ]
    kills = 0
    try:
        wait_for(lambda: server.poll() is not None or _answers(base), 120, "gunicorn")
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({server.returncode}); see {stack.log_dir}")
        for thread in threads:
            thread.start()
        for number in range(1, rounds + 1):
            wait_for(lambda: _answers(base), 120, "a gunicorn worker")
            time.sleep(rng.uniform(*kill_within))
            workers = _workers(server.pid)
            with lock:
                answered = len(sent)
            for worker in workers:
                os.kill(worker, signal.SIGKILL)
            killed_at = time.time()
            kills += 1
            aged = age_abandoned_claims(engine, killed_at)
            report.notes.append(
                f"round {number}: SIGKILL of worker {workers} after {answered} answered "
                f"requests; {aged} abandoned claim(s) aged for the retries"
            )
        wait_for(lambda: _answers(base), 120, "a gunicorn worker")
        time.sleep(1.0)
        done.set()
        for thread in threads:
            thread.join(120)
        replays = _replay_all(base, seed.tokens, sent, report)
    finally:
        done.set()
        stop(server)
    passes = sweep_to_the_end(stack, engine)
    report.notes.append(f"then the sweeps ran to the end in {passes} pass(es)")
    for failure in failures:
        report.violations.append(failure)
    report.count("SIGKILLs of the gunicorn worker", kills)
    report.count("requests answered (reserve + cancel)", len(sent))
    report.count(
        "of them retried after a dropped connection, 5xx or in-progress",
        sum(1 for s in sent if s.retries),
    )
    report.count("replays that got the first answer (status and body)", replays)
    report.count(
        "answers that were a 409 conflict (not stored, so not replayed)",
        sum(1 for s in sent if s.status == 409),
    )
    check_api(stack, engine, sent, report)
    engine.dispose()
    return report


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).replace(microsecond=0).isoformat()


def _answers(base: str) -> bool:
    import requests

    try:
        return requests.get(base + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _replay_all(base: str, tokens: list[str], sent: list[Sent], report: Report) -> int:
    """Send every answered request again, same key and body: it must get the same answer."""
    clients = [Client(base, token) for token in tokens]
    same = 0
    for request in sent:
        if request.status == 409:  # a conflict is not stored (the key is released): no replay
            continue
        replay = Sent(request.name, request.path, request.key, request.body, request.who)
        clients[request.who].until_answered(replay, give_up=60)
        ok = (replay.status, replay.answer) == (request.status, request.answer)
        report.expect(
            ok,
            f"{request.name} {request.key}: first {request.status} {request.answer!r:.200}, "
            f"replay {replay.status} {replay.answer!r:.200}",
        )
        same += ok
    return same


def _metadata(stripe_object: dict[str, object]) -> dict[str, object]:
    metadata = stripe_object.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def check_api(stack: Stack, engine: Engine, sent: list[Sent], report: Report) -> None:
    intents = stack.stripe.list("payment_intents")
    refunds = stack.stripe.list("refunds")
    with engine.connect() as connection:
        reservations = connection.execute(
            text(
                "SELECT id, vehicle_plate, status, closed_reason, payment_id, amount_paid, "
                "fee_amount FROM parking_reservations"
            )
        ).all()
        payments = {
            row.id: row
            for row in connection.execute(text("SELECT id, status, reference FROM payments"))
        }
        open_claims = connection.execute(
            text("SELECT count(*) FROM idempotency_keys WHERE completed_at IS NULL")
        ).scalar()
    per_plate = Counter(row.vehicle_plate for row in reservations)
    succeeded = Counter(
        str(_metadata(i).get("reference")) for i in intents if i.get("status") == "succeeded"
    )
    refunds_per_intent = Counter(str(r.get("payment_intent")) for r in refunds)
    plates = [s.body["vehicle_plate"] for s in sent if s.name == "reserve" and s.body]
    for plate in plates:
        report.expect(
            per_plate[plate] <= 1,
            f"plate {plate}: {per_plate[plate]} reservations for one Idempotency-Key",
        )
    unrefunded = [
        row.id
        for row in reservations
        if row.status == "canceled" and row.amount_paid != row.fee_amount
    ]
    for row in reservations:
        report.expect(
            succeeded[row.id] <= 1, f"reservation {row.id} charged {succeeded[row.id]} times"
        )
    for reservation_id in unrefunded:
        report.violations.append(f"reservation {reservation_id} canceled but not refunded")
    for intent_id, times in refunds_per_intent.items():
        report.expect(times <= 1, f"PaymentIntent {intent_id} refunded {times} times")
    for payment_id, payment in payments.items():
        report.expect(
            payment.status in ("succeeded", "failed", "canceled"),
            f"payment {payment_id} left {payment.status}",
        )
    report.expect(open_claims == 0, f"{open_claims} Idempotency-Key claims never finished")
    report.count("reservation keys (one plate each)", len(plates))
    report.count("plates with at most one reservation", sum(1 for p in plates if per_plate[p] <= 1))
    ours = {row.id for row in reservations if row.vehicle_plate in set(plates)}
    report.count("their reservations in the database", len(ours))
    report.count("their succeeded PaymentIntents at localstripe", sum(succeeded[r] for r in ours))
    report.count("refunds at localstripe", len(refunds))
    report.count(
        "canceled reservations refunded (all but the fee)",
        sum(1 for r in reservations if r.status == "canceled") - len(unrefunded),
    )
    report.count("Idempotency-Key claims left unfinished", int(open_claims or 0))


# --- scenario 3: an ingest worker while the sensors publish ---------------------------------


class Publisher:
    """Sensors publishing state changes with QoS 1 as fast as the broker takes them; remembers
    which messages the broker acknowledged (PUBACK)."""

    def __init__(self, url: str, prefix: str, devices: list[str]) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from parking.mqtt import broker_address, state_topic

        host, port, _user, _password, _tls = broker_address(url)
        self._topics = {device: state_topic(prefix, device) for device in devices}
        self._devices = devices
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"crash-sensors-{uuid.uuid4().hex[:8]}"
        )
        self._client.max_inflight_messages_set(200)
        self._client.on_publish = self._on_publish
        self._client.connect(host, port, keepalive=30)
        self._pending: dict[int, tuple[str, str]] = {}
        self._early: set[int] = set()
        self.acknowledged: list[tuple[str, str]] = []
        self.sent = 0
        self._lock = threading.Lock()
        self._last: dict[str, Any] = {}

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, _reason: Any, _p: Any) -> None:
        with self._lock:
            message = self._pending.pop(mid, None)
            if message is None:  # acknowledged before publish() returned its mid
                self._early.add(mid)
            else:
                self.acknowledged.append(message)

    def run(self, stop: Any) -> None:
        """Publish round the sensors until ``stop`` is set."""
        import json
        from datetime import UTC, datetime

        self._client.loop_start()
        number = 0
        while not stop.is_set():
            device = self._devices[number % len(self._devices)]
            stamp = datetime.now(UTC)
            if self._last.get(device) is not None and stamp <= self._last[device]:
                stamp = self._last[device] + timedelta(microseconds=1)
            self._last[device] = stamp
            body = json.dumps({"occupied": number % 3 != 0, "observed_at": stamp.isoformat()})
            # Not under our lock: paho's thread takes it (PUBACK) while holding paho's own.
            info = self._client.publish(self._topics[device], body, qos=1)
            with self._lock:
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    self.acknowledged.append((device, stamp.isoformat()))
                else:
                    self._pending[info.mid] = (device, stamp.isoformat())
            self.sent += 1
            number += 1
            while len(self._pending) > 1000 and not stop.is_set():
                time.sleep(0.001)  # as fast as the broker acknowledges

    def close(self, timeout: float = 30) -> None:
        wait_for(lambda: not self._pending, timeout, "the broker to acknowledge the last ones")
        self._client.loop_stop()
        self._client.disconnect()


# What a broker must hold for the ingest worker: every acknowledged QoS 1 message, however far
# the worker falls behind or however long it is down. Mosquitto's default (1000 per session
# above those in flight) drops the rest silently after PUBACK: the crash run shows it.
MOSQUITTO_SETTINGS = "max_queued_messages 0\nmax_inflight_messages 20\n"


@contextlib.contextmanager
def mosquitto(log_dir: Path) -> Iterator[str]:
    """The system's Mosquitto binary on a free loopback port, with :data:`MOSQUITTO_SETTINGS`."""
    import shutil

    from devtools.service import answers, free_port

    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    config = log_dir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n" + MOSQUITTO_SETTINGS
    )
    process = subprocess.Popen(  # noqa: S603 - the system's broker, our config
        [binary, "-c", str(config)],
        stdout=(log_dir / "mosquitto.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: process.poll() is not None or answers("127.0.0.1", port), 10, "mosquitto")
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto exited ({process.returncode}); see {log_dir}")
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        stop(process)


def scenario_ingest(
    stack: Stack,
    rounds: int,
    rng: random.Random,
    *,
    sensors: int = 200,
    down_within: tuple[float, float] = (0.0, 2.0),
    up_within: tuple[float, float] = (0.0, 3.0),
    mqtt_url: str | None = None,
) -> Report:
    from parking import demo

    if mqtt_url is None:
        with mosquitto(stack.log_dir) as url:
            report = scenario_ingest(
                stack,
                rounds,
                rng,
                mqtt_url=url,
                sensors=sensors,
                down_within=down_within,
                up_within=up_within,
            )
            report.notes.insert(
                0,
                f"broker: Mosquitto on {url} with "
                f"{MOSQUITTO_SETTINGS.strip().replace(chr(10), ', ')}",
            )
            return report
    report = Report("ingest worker (`flask parking ingest`) under sensors publishing with QoS 1")
    url = mqtt_url
    run_id = uuid.uuid4().hex[:8]
    settings = {
        "MQTT_URL": url,
        "MQTT_TOPIC_PREFIX": f"crash{run_id}",  # this run's topics only
        "MQTT_SHARED_GROUP": f"crash{run_id}",
        "MQTT_CLIENT_ID": f"crash-ingest-{run_id}",  # the same session across restarts
        "MQTT_CONNECTIONS": "2",
    }
    app = stack.app()
    with app.app_context():
        devices = demo.simulated_devices(sensors)
    app.extensions["db_engine"].dispose()
    engine = stack.engine()
    command = [FLASK, "parking", "ingest"]
    worker = stack.spawn("ingest", command, **settings)
    wait_for(lambda: _subscribed(worker, stack), 60, "the ingest worker to subscribe")
    publisher = Publisher(url, settings["MQTT_TOPIC_PREFIX"], devices)
    halt = threading.Event()
    thread = threading.Thread(target=publisher.run, args=(halt,), daemon=True)
    thread.start()
    kills = 0
    try:
        for number in range(1, rounds + 1):
            before = _scalar(engine, "SELECT count(*) FROM parking_sensor_events")
            ingesting = partial(_stored_more_than, engine, before)
            wait_for(ingesting, 180, "the (restarted) worker to ingest")
            time.sleep(rng.uniform(*up_within))
            stored = _scalar(engine, "SELECT count(*) FROM parking_sensor_events")
            sigkill(worker)
            kills += 1
            down = rng.uniform(*down_within)
            time.sleep(down)
            worker = stack.spawn("ingest", command, **settings)
            report.notes.append(
                f"round {number}: SIGKILL while ingesting, with {publisher.sent} published, "
                f"{len(publisher.acknowledged)} acknowledged, {stored} stored; "
                f"restarted {down:.1f}s later"
            )
        time.sleep(2.0)
    finally:
        halt.set()
        thread.join(30)
    try:
        publisher.close()
        acknowledged = set(publisher.acknowledged)
        wait_for(
            lambda: (
                _scalar(engine, "SELECT count(*) FROM parking_sensor_events") >= len(acknowledged)
            ),
            180,
            "the worker to store every acknowledged event",
        )
    except RuntimeError as error:
        report.notes.append(str(error))
    finally:
        time.sleep(1.0)
        stop(worker)
    report.count("SIGKILLs of the ingest worker", kills)
    check_ingest(engine, publisher, report)
    engine.dispose()
    return report


def _stored_more_than(engine: Engine, count: int) -> bool:
    return _scalar(engine, "SELECT count(*) FROM parking_sensor_events") > count


def _subscribed(worker: subprocess.Popen[bytes], stack: Stack) -> bool:
    if worker.poll() is not None:
        raise RuntimeError(f"the ingest worker exited ({worker.returncode}); see {stack.log_dir}")
    log = stack.log_dir / "ingest.log"
    return log.exists() and "ingesting from" in log.read_text(errors="replace")


def check_ingest(engine: Engine, publisher: Publisher, report: Report) -> None:
    from datetime import datetime

    with engine.connect() as connection:
        stored = {
            (row.device_id, row.observed_at)
            for row in connection.execute(
                text(
                    "SELECT s.device_id, e.observed_at FROM parking_sensor_events e "
                    "JOIN parking_sensors s ON s.id = e.sensor_id"
                )
            )
        }
        counts: dict[str, int] = {
            row.outcome: int(row.events)
            for row in connection.execute(
                text("SELECT outcome, events FROM parking_ingest_counts WHERE source = 'mqtt'")
            )
        }
        torn = connection.execute(
            text(
                "SELECT count(*) FROM parking_sensors s WHERE s.observed_at IS NOT NULL AND "
                "s.observed_at <> (SELECT max(e.observed_at) FROM parking_sensor_events e "
                "WHERE e.sensor_id = s.id)"
            )
        ).scalar()
    rows = len(stored)
    acknowledged = {(d, datetime.fromisoformat(stamp)) for d, stamp in publisher.acknowledged}
    lost = acknowledged - stored
    applied_or_kept = int(counts.get("applied", 0)) + int(counts.get("stale", 0))
    report.expect(not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:3]}")
    report.expect(
        applied_or_kept == rows,
        f"events counted applied or stale {applied_or_kept} != events stored {rows} "
        "(an event applied twice, or one stored without being counted)",
    )
    report.expect(torn == 0, f"{torn} sensors whose state is not their newest event")
    report.count("events published", publisher.sent)
    report.count("events acknowledged by the broker (PUBACK)", len(acknowledged))
    report.count("events stored (one row per sensor and observed_at)", rows)
    report.count("acknowledged events lost", len(lost))
    report.count("events counted applied + stale (each once)", applied_or_kept)
    report.count("redeliveries ignored as duplicates", int(counts.get("duplicate", 0)))
    report.count("sensors whose state is not their newest event", int(torn or 0))


# --- running ---------------------------------------------------------------------------------


SCENARIOS: dict[str, Callable[..., Report]] = {
    "scheduler": scenario_scheduler,
    "api": scenario_api,
    "ingest": scenario_ingest,
}


def run_on(
    database_url: str,
    stripe: LocalStripe,
    scenarios: list[str],
    rounds: int,
    rng: random.Random,
    log_dir: Path,
    **sizes: Any,
) -> list[Report]:
    """Migrate the (empty) database and run the scenarios on it; prints each report."""
    from app import create_app
    from core import migrations

    app = create_app(
        {"TESTING": True, "DATABASE_URL": database_url, "REDIS_URL": "", "LOG_LEVEL": "ERROR"}
    )
    with app.app_context():
        migrations.upgrade()
    app.extensions["db_engine"].dispose()
    for old in log_dir.glob("*.log"):  # this run's logs only
        old.unlink()
    stack = Stack(database_url, stripe, log_dir)
    reports = []
    for name in scenarios:
        report = SCENARIOS[name](stack, rounds, rng, **sizes.get(name, {}))
        report.print()
        reports.append(report)
    return reports


def run(
    server_url: str,
    scenarios: list[str],
    rounds: int,
    seed: int,
    stripe_port: int | None,
    log_dir: Path,
    mqtt_url: str | None = None,
) -> list[Report]:
    """A fresh database on the server and a localstripe for this run; both gone after it."""
    with fresh_database(server_url) as database_url, LocalStripe(stripe_port) as stripe:
        name = make_url(database_url).database
        print(f"crash: database {name}, localstripe {stripe.url}, seed {seed}, logs in {log_dir}")
        sys.stdout.flush()
        rng = random.Random(seed)  # noqa: S311 - kill times, not secrets
        sizes = {"ingest": {"mqtt_url": mqtt_url}}
        return run_on(database_url, stripe, scenarios, rounds, rng, log_dir, **sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="SIGKILLs per scenario")
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--database",
        default=os.environ.get("TEST_DATABASE_URL") or LOCAL,
        help="a PostgreSQL server URL (any database); a fresh one is made on it",
    )
    parser.add_argument(
        "--mqtt",
        default=None,
        help="an existing MQTT broker for the ingest scenario (e.g. mqtt://127.0.0.1:1883); "
        "by default the system's Mosquitto is started on a free port with MOSQUITTO_SETTINGS",
    )
    parser.add_argument("--stripe-port", type=int, default=None, help="localstripe's port")
    parser.add_argument("--log-dir", type=Path, default=ROOT / "instance" / "crash")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)  # unwind: stop the children, drop the database
    reason = probe(args.database)
    if reason is not None:
        print(f"crash tests need PostgreSQL: {args.database} does not answer ({reason})")
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    reports = run(
        args.database, scenarios, args.rounds, seed, args.stripe_port, args.log_dir, args.mqtt
    )
    failed = [r.scenario for r in reports if r.violations]
    print(
        f"\ncrash: {len(reports)} scenario(s), seed {seed}: "
        + ("all invariants held" if not failed else f"VIOLATED in {', '.join(failed)}")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    from bench import report

    # what it printed is kept in bench/results/crash.txt, which make bench puts in RESULTS.md
    sys.exit(report.recorded("crash", f"python -m devtools.crash {' '.join(sys.argv[1:])}", main))
