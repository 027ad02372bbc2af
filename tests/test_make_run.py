"""``make run`` as a newcomer uses it: two checkouts side by side, the URL printed, Ctrl-C.

The server is stood in for by ``python -m http.server`` on ``PORT``; what is under test is the
runner that ``make run`` wraps it in (``python -m devtools.localstripe --wrap ...``).
"""

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import config
from devtools.localstripe import ROOT, free_port
from devtools.mqtt_broker import side_by_side
from devtools.service import SigtermPassedOn

pytestmark = pytest.mark.timeout(90)


class Run:
    """One ``make run``-like process group, with its output read line by line."""

    def __init__(self, port: int, instance: Path, with_ingest: bool = False) -> None:
        self.port = port
        self.instance = instance
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
        env["PORT"] = str(port)
        runner = [sys.executable, "-m", "devtools.localstripe", "--instance", str(instance)]
        server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
        if with_ingest:  # the whole of `make run`: the MQTT runner around the localstripe one
            runner = [sys.executable, "-m", "devtools.mqtt_broker", "--wrap", *runner]
            env["MQTT_URL"] = f"mqtt://127.0.0.1:{free_port()}"  # an embedded broker there
            env["DATABASE_URL"] = f"sqlite:///{instance / 'civic.db'}"
        self.process = subprocess.Popen(
            [*runner, "--wrap", *server],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, start: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line.startswith(start):
                return line
        raise AssertionError(f"no line starting {start!r} within {timeout}s")

    def ctrl_c(self) -> int:
        """SIGINT to the whole process group, as the terminal sends on Ctrl-C."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(20)

    def kill(self) -> None:
        """Whatever is left of the group (the runner, its server, its localstripe)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.kill()


def start(
    runs: list[Run], tmp_path: Path, name: str, port: int | None = None, with_ingest: bool = False
) -> Run:
    instance = tmp_path / name
    instance.mkdir()
    run = Run(port or free_port(), instance, with_ingest)
    runs.append(run)
    return run


def port_with_a_free_neighbour() -> int:
    """A free port whose localstripe port (+420) is free too."""
    while True:
        port = free_port()
        if port + 420 <= 65535 and not is_taken(port + 420):
            return port


def is_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v1/customers", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def test_two_checkouts_run_side_by_side_each_with_its_own_localstripe(runs, tmp_path):
    first, second = start(runs, tmp_path, "first"), start(runs, tmp_path, "second")
    urls = []
    for run in (first, second):
        line = run.wait_for_line("localstripe on ")
        url = line.removeprefix("localstripe on ").split(",")[0]
        assert (run.instance / "localstripe.url").read_text().strip() == url
        urls.append(url)
        served = run.wait_for_line("The API is at ")
        assert f"http://127.0.0.1:{run.port} " in served and "/docs" in served
    assert urls[0] != urls[1]
    assert all(answers(url) for url in urls)
    for run, url in zip((first, second), urls, strict=True):
        assert run.ctrl_c() == 0
        assert not (run.instance / "localstripe.url").exists()
        assert not answers(url)


def test_ctrl_c_on_the_whole_make_run_chain_is_a_normal_stop(runs, tmp_path):
    run = start(runs, tmp_path, "whole", with_ingest=True)
    url = run.wait_for_line("localstripe on ").removeprefix("localstripe on ").split(",")[0]
    run.wait_for_line("The API is at ")
    assert run.ctrl_c() == 0, "make would print 'make: *** [run] Error'"
    assert not is_taken(run.port)
    assert not answers(url)


def test_sigterm_to_the_runner_stops_the_server_and_localstripe_at_once(runs, tmp_path):
    run = start(runs, tmp_path, "terminated")
    url = run.wait_for_line("localstripe on ").removeprefix("localstripe on ").split(",")[0]
    run.wait_for_line("The API is at ")
    started = time.monotonic()
    run.process.terminate()  # to the runner only, as `kill` or a service manager sends it
    run.process.wait(20)
    assert time.monotonic() - started < 5, "the server should not be waited on for 10 s"
    assert not is_taken(run.port), "the server is still listening"
    assert not answers(url), "localstripe is still answering"


def test_sigterm_to_the_whole_chain_runner_stops_everything_and_exits_143(runs, tmp_path):
    run = start(runs, tmp_path, "terminated-chain", with_ingest=True)
    url = run.wait_for_line("localstripe on ").removeprefix("localstripe on ").split(",")[0]
    run.wait_for_line("The API is at ")
    started = time.monotonic()
    run.process.terminate()  # to the outer (MQTT) runner only
    assert run.process.wait(20) == 143, "a terminated runner says so"
    assert time.monotonic() - started < 5
    assert not is_taken(run.port), "the server is still listening"
    assert not answers(url), "localstripe is still answering"


def test_a_sigterm_is_passed_on_to_the_child_and_raises_nothing_in_the_runner():
    # Raising from the handler would break into Popen.wait wherever it was: pass it on instead.
    child = subprocess.Popen(["sleep", "60"])
    previous = signal.getsignal(signal.SIGTERM)
    try:
        sigterm = SigtermPassedOn(child)
        assert sigterm.status(0) == 0
        os.kill(os.getpid(), signal.SIGTERM)
        assert child.wait(5) == -signal.SIGTERM
        assert sigterm.received and sigterm.status(child.returncode) == 143
        os.kill(os.getpid(), signal.SIGTERM)  # again, the child gone: still nothing raised
    finally:
        signal.signal(signal.SIGTERM, previous)
        child.kill()
        child.wait()


def test_localstripe_takes_port_plus_420_or_a_free_one_when_that_is_taken(runs, tmp_path):
    port = port_with_a_free_neighbour()
    run = start(runs, tmp_path, "one", port)
    assert f"localstripe on http://127.0.0.1:{port + 420}," in run.wait_for_line("localstripe on ")
    run.wait_for_line("The API is at ")
    assert run.ctrl_c() == 0
    port = port_with_a_free_neighbour()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port + 420))
        blocker.listen()
        crowded = start(runs, tmp_path, "two", port)
        line = crowded.wait_for_line("localstripe on ")
        assert f"127.0.0.1:{port + 420}," not in line
        crowded.wait_for_line("The API is at ")
        assert crowded.ctrl_c() == 0


def test_flask_commands_find_the_localstripe_that_make_run_started(monkeypatch, tmp_path):
    for name in ("STRIPE_API_BASE", "STRIPE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    url_file = tmp_path / "localstripe.url"
    monkeypatch.setattr(config, "LOCALSTRIPE_URL_FILE", url_file)
    assert config.load()["STRIPE_API_BASE"] == config.LOCALSTRIPE_URL
    url_file.write_text("http://127.0.0.1:8523\n")
    assert config.load()["STRIPE_API_BASE"] == "http://127.0.0.1:8523"
    monkeypatch.setenv("STRIPE_API_BASE", "http://127.0.0.1:9999")
    assert config.load()["STRIPE_API_BASE"] == "http://127.0.0.1:9999"


def test_two_checkouts_ingest_workers_on_one_broker_each_get_every_event():
    # A shared group across checkouts would make the broker split the events between them.
    first, second = {"PORT": "8000"}, {"PORT": "8100"}
    side_by_side(first)
    side_by_side(second)
    assert first["MQTT_SHARED_GROUP"] != second["MQTT_SHARED_GROUP"]
    assert first["MQTT_CLIENT_ID"] != second["MQTT_CLIENT_ID"]
    assert "/" not in first["MQTT_SHARED_GROUP"] and "+" not in first["MQTT_SHARED_GROUP"]
    chosen = {"PORT": "8000", "MQTT_SHARED_GROUP": "ingest", "MQTT_CLIENT_ID": "mine"}
    side_by_side(chosen)
    assert chosen["MQTT_SHARED_GROUP"] == "ingest" and chosen["MQTT_CLIENT_ID"] == "mine"
