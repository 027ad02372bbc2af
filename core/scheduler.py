"""Scheduled sweeps (APScheduler 3.11) run by exactly one leader.

Modules register sweeps in ``register()`` with :func:`register_job`; each sweep is a function
that works through due rows, is safe to run twice, and returns how many rows it touched. One
process runs them: ``flask scheduler run`` in production (a second copy waits as a hot
standby), or embedded in ``make run``. Leadership is a PostgreSQL advisory lock held on a
dedicated connection, or an ``flock`` on a file for SQLite; either is released by the kernel
or the server when the leader dies, so the standby takes over.
"""

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

import click
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask
from sqlalchemy import Integer, String, Text, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from core import db
from core.clock import utcnow
from core.db import Base, UTCDateTime

log = logging.getLogger("civic.scheduler")
ADVISORY_LOCK_KEY = 0x63697669  # "civi": one key for the whole scheduler


@dataclass(frozen=True)
class Job:
    id: str
    func: Callable[[], int | None]
    seconds: int


class JobStat(Base):
    """Run counts and the last run of each job (Prometheus reads it across processes)."""

    __tablename__ = "scheduler_job_stats"

    job_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    runs_ok: Mapped[int] = mapped_column(Integer, default=0)
    runs_failed: Mapped[int] = mapped_column(Integer, default=0)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_rows: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)


def register_job(app: Flask, job_id: str, func: Callable[[], int | None], *, seconds: int) -> None:
    """Run ``func`` every ``seconds`` in the scheduler process."""
    jobs: dict[str, Job] = app.extensions.setdefault("scheduler_jobs", {})
    if job_id in jobs:
        raise ValueError(f"job {job_id!r} is registered twice")
    jobs[job_id] = Job(job_id, func, seconds)


def jobs_of(app: Flask) -> list[Job]:
    return list(app.extensions.get("scheduler_jobs", {}).values())


def run_job(app: Flask, job: Job) -> int | None:
    """Run one job in its own app context; log start, end, rows touched and errors."""
    with app.app_context():
        started = utcnow()
        log.info("job started", extra={"job": job.id})
        try:
            rows = job.func() or 0
        except Exception as exc:
            db.session.rollback()
            log.exception("job failed", extra={"job": job.id})
            _record(job.id, started, rows=None, error=f"{type(exc).__name__}: {exc}")
            return None
        duration_ms = round((utcnow() - started).total_seconds() * 1000, 1)
        log.info("job finished", extra={"job": job.id, "rows": rows, "duration_ms": duration_ms})
        _record(job.id, started, rows=rows, error=None)
        return rows


def _record(job_id: str, started: datetime, *, rows: int | None, error: str | None) -> None:
    stat = db.session.get(JobStat, job_id) or JobStat(job_id=job_id, runs_ok=0, runs_failed=0)
    if error is None:
        stat.runs_ok += 1
    else:
        stat.runs_failed += 1
    stat.last_started_at, stat.last_finished_at = started, utcnow()
    stat.last_rows, stat.last_error = rows, error
    db.session.add(stat)
    db.session.commit()


def job_stats() -> list[JobStat]:
    return list(db.session.scalars(select(JobStat).order_by(JobStat.job_id)))


# --- leadership ----------------------------------------------------------------------------


class LeaderLock:
    """The scheduler's leadership: an advisory lock (PostgreSQL) or a file lock (SQLite)."""

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._connection: Connection | None = None
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        """Take leadership if nobody holds it; never blocks."""
        with self._app.app_context():
            if db.is_postgresql():
                return self._try_advisory_lock()
        return self._try_file_lock()

    def _try_advisory_lock(self) -> bool:
        connection = db.engine().connect()
        acquired = connection.scalar(select(func.pg_try_advisory_lock(ADVISORY_LOCK_KEY)))
        connection.commit()
        if acquired:
            self._connection = connection
        else:
            connection.close()
        return bool(acquired)

    def _try_file_lock(self) -> bool:
        path = self._app.config["SCHEDULER_LOCK_FILE"]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held open for as long as we lead
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def still_held(self) -> bool:
        """False when the lock's database connection has gone (then another may lead)."""
        if self._connection is None:
            return self._file is not None
        try:
            self._connection.execute(text("SELECT 1"))
            self._connection.commit()
        except Exception:
            log.exception("leader lock connection lost")
            return False
        return True

    def release(self) -> None:
        if self._connection is not None:
            # Invalidate rather than close: a pooled close would keep the server session, and
            # its lock, alive. Ending the session releases every advisory lock it held.
            self._connection.invalidate()
            self._connection.close()
            self._connection = None
        if self._file is not None:
            self._file.close()  # closing the file releases the flock
            self._file = None


def wait_for_leadership(lock: LeaderLock, poll_seconds: float, stop: threading.Event) -> bool:
    """Stand by until ``lock`` is ours (True) or ``stop`` is set (False)."""
    announced = False
    while not stop.is_set():
        if lock.try_acquire():
            log.info("scheduler is the leader")
            return True
        if not announced:
            log.info("another scheduler leads; standing by")
            announced = True
        stop.wait(poll_seconds)
    return False


def _add_jobs(app: Flask, scheduler: BaseScheduler) -> None:
    for job in jobs_of(app):
        scheduler.add_job(
            run_job,
            "interval",
            args=(app, job),
            seconds=job.seconds,
            id=job.id,
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=job.seconds,
        )


def run_forever(app: Flask, poll_seconds: float = 5.0) -> None:
    """``flask scheduler run``: stand by until leader, then run the jobs until the lock is lost."""
    lock = LeaderLock(app)
    wait_for_leadership(lock, poll_seconds, threading.Event())
    scheduler = BlockingScheduler(timezone=UTC)
    _add_jobs(app, scheduler)

    def _check_leadership() -> None:
        if not lock.still_held():
            log.error("leadership lost; stopping so a standby can take over")
            scheduler.shutdown(wait=False)

    scheduler.add_job(_check_leadership, "interval", seconds=poll_seconds, id="_leadership")
    log.info("scheduler running", extra={"jobs": [j.id for j in jobs_of(app)]})
    try:
        scheduler.start()
    finally:
        lock.release()


def start_embedded(app: Flask) -> threading.Thread:
    """Run the scheduler in a background thread of the web process (``make run``)."""

    def _run() -> None:
        lock = LeaderLock(app)
        if not wait_for_leadership(lock, 5.0, threading.Event()):
            return
        scheduler = BackgroundScheduler(timezone=UTC)
        _add_jobs(app, scheduler)
        # Held for the life of the process: the lock's file (or connection) must outlive this
        # function, or garbage collection would close it and hand leadership to another.
        app.extensions["embedded_scheduler"] = (scheduler, lock)
        scheduler.start()  # its own daemon thread runs the jobs from here on
        log.info("embedded scheduler running", extra={"jobs": [j.id for j in jobs_of(app)]})

    thread = threading.Thread(target=_run, name="embedded-scheduler", daemon=True)
    thread.start()
    return thread


def should_embed(app: Flask) -> bool:
    """Embed only when asked, only in a server (``flask run``, gunicorn), not in another
    ``flask`` command (the ingest worker, an operator's command), and never in the reloader's
    watcher process (it would run twice)."""
    if not app.config["SCHEDULER_EMBEDDED"] or app.testing:
        return False
    command = click.get_current_context(silent=True)
    if command is not None and command.info_name != "run":
        return False
    return not (app.debug and os.environ.get("WERKZEUG_RUN_MAIN") != "true")
