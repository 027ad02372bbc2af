"""Sweeps run by one leader; a standby takes over when the leader dies."""

import gc
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import pytest

from core import scheduler
from core.scheduler import Job, LeaderLock, job_stats, run_job

ROOT = Path(__file__).resolve().parents[2]


def test_only_one_lock_holder_leads_and_release_hands_over(app):
    first, second = LeaderLock(app), LeaderLock(app)
    assert first.try_acquire()
    try:
        assert not second.try_acquire()
        assert first.still_held()
    finally:
        first.release()
    assert second.try_acquire()
    second.release()


def test_a_job_run_is_logged_and_counted(app, caplog):
    job = Job("test.counts", lambda: 3, seconds=60)
    with caplog.at_level("INFO", logger="civic.scheduler"):
        assert run_job(app, job) == 3
    finished = [r for r in caplog.records if r.getMessage() == "job finished"]
    assert finished and finished[0].rows == 3 and finished[0].job == "test.counts"
    with app.app_context():
        (stat,) = job_stats()
    assert (stat.job_id, stat.runs_ok, stat.runs_failed, stat.last_rows) == ("test.counts", 1, 0, 3)


def test_a_failing_job_is_logged_and_counted_without_stopping_the_scheduler(app, caplog):
    def fail() -> int:
        raise RuntimeError("disk on fire")

    with caplog.at_level("ERROR", logger="civic.scheduler"):
        assert run_job(app, Job("test.fails", fail, seconds=60)) is None
    assert any(r.exc_info and "disk on fire" in str(r.exc_info[1]) for r in caplog.records)
    with app.app_context():
        (stat,) = job_stats()
    assert (stat.runs_ok, stat.runs_failed) == (0, 1)
    assert stat.last_error == "RuntimeError: disk on fire"


def test_job_runs_show_in_metrics(app, client):
    run_job(app, Job("test.metrics", lambda: 1, seconds=60))
    text = client.request("GET", "/metrics", 200).get_data(as_text=True)
    assert 'civic_job_runs_total{job="test.metrics",outcome="ok"} 1.0' in text


def test_modules_register_their_sweeps(app):
    assert "core.expire_idempotency_keys" in [j.id for j in scheduler.jobs_of(app)]
    with pytest.raises(ValueError, match="twice"):
        scheduler.register_job(app, "core.expire_idempotency_keys", lambda: 0, seconds=1)


def test_embedding_is_off_in_tests_and_in_the_reloaders_watcher(app, monkeypatch):
    assert not scheduler.should_embed(app)
    monkeypatch.setitem(app.config, "SCHEDULER_EMBEDDED", True)
    monkeypatch.setattr(app, "testing", False)
    monkeypatch.setattr(app, "debug", True)
    monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    assert not scheduler.should_embed(app)
    monkeypatch.setenv("WERKZEUG_RUN_MAIN", "true")
    assert scheduler.should_embed(app)


class SchedulerProcess:
    """``flask scheduler run`` in a subprocess, its log lines collected as they come."""

    def __init__(self, app) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": app.config["DATABASE_URL"],
            "SCHEDULER_LOCK_FILE": app.config["SCHEDULER_LOCK_FILE"],
            "FLASK_APP": "app",
        }
        self.lines: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "scheduler", "run", "--poll", "0.3"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} not logged in {timeout}s; saw: {''.join(seen)[-2000:]}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def test_a_second_scheduler_stands_by_and_takes_over_when_the_leader_dies(app):
    leader = SchedulerProcess(app)
    standby = None
    try:
        leader.wait_for("scheduler is the leader")
        leader.wait_for('"job": "core.expire_idempotency_keys"')
        standby = SchedulerProcess(app)
        standby.wait_for("standing by")
        leader.kill()
        standby.wait_for("scheduler is the leader")
        standby.wait_for("job finished")
    finally:
        for process in (leader, standby):
            if process and process.process.poll() is None:
                process.kill()


def test_an_embedded_scheduler_keeps_its_leadership_after_it_starts(app, tmp_path):
    lock_file = str(tmp_path / "embedded.lock")
    app.config["SCHEDULER_LOCK_FILE"] = lock_file
    scheduler.start_embedded(app).join(10)
    try:
        running, _lock = app.extensions["embedded_scheduler"]
        gc.collect()  # nothing of the leadership may be left to the garbage collector
        other = LeaderLock(app)
        assert not other.try_acquire(), "a second scheduler took over a live leader's lock"
    finally:
        running, lock = app.extensions.pop("embedded_scheduler")
        running.shutdown(wait=False)
        lock.release()


def test_only_a_server_embeds_the_scheduler_not_other_flask_commands(app, monkeypatch):
    monkeypatch.setitem(app.config, "SCHEDULER_EMBEDDED", True)
    monkeypatch.setattr(app, "testing", False)
    for command, embeds in (("run", True), ("ingest", False), ("seed", False)):
        with click.Context(click.Command(command), info_name=command):
            assert scheduler.should_embed(app) is embeds
    assert scheduler.should_embed(app)  # gunicorn: no command at all
