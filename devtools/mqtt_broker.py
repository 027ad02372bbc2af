"""An embedded MQTT broker (amqtt) for development and tests, and ``make run``'s ingest worker.

Production and CI use Mosquitto (or EMQX). On a laptop with no broker, ``make run`` needs one so
that ``flask parking ingest`` and ``flask parking simulate`` work: this module serves amqtt on
loopback only. amqtt is a stand-in for demos (about 2,500 messages/s here) and, unlike Mosquitto,
has no shared subscriptions, so the worker it feeds subscribes plainly (``MQTT_SHARED_GROUP=``).

- ``python -m devtools.mqtt_broker --port 1883`` serves it until SIGTERM/SIGINT.
- :class:`EmbeddedBroker` runs one in a subprocess on a free port (tests).
- ``--wrap COMMAND...`` (``make run``) runs COMMAND with the ingest worker beside it, and first
  starts the embedded broker if nothing answers at ``MQTT_URL``; everything stops with COMMAND.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from types import TracebackType
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(host: str, port: int) -> None:
    """Serve amqtt on ``host:port`` (anonymous, no $SYS topics) until SIGTERM/SIGINT."""
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }

    async def main() -> None:
        broker = Broker(config)
        await broker.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await broker.shutdown()

    asyncio.run(main())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def answers(host: str, port: int) -> bool:
    """True when something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """amqtt in a subprocess on loopback: ``with EmbeddedBroker() as broker: broker.url``."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.url = f"mqtt://{host}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def start(self, timeout: float = 20.0) -> "EmbeddedBroker":
        if answers(self.host, self.port):
            raise RuntimeError(f"{self.host}:{self.port} is already taken")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        command = [sys.executable, "-P", str(Path(__file__).resolve())]
        self._process = subprocess.Popen(  # noqa: S603 - our own script, fixed arguments
            [*command, "--host", self.host, "--port", str(self.port)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"amqtt exited at start: {self._stderr_tail()}")
            if answers(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"amqtt did not answer on {self.url} within {timeout}s")

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_with_ingest(command: list[str]) -> int:
    """Run ``command`` with ``flask parking ingest`` beside it, and an embedded broker if no
    broker answers at ``MQTT_URL``; stop them when ``command`` ends."""
    url = os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883")
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 1883
    env = dict(os.environ)
    broker: EmbeddedBroker | None = None
    if not answers(host, port):
        if host not in LOOPBACK:
            print(f"no MQTT broker answers at {url}; not starting one off loopback", flush=True)
            return subprocess.call(command)  # noqa: S603 - the developer's own command
        broker = EmbeddedBroker(port, "127.0.0.1").start()
        env["MQTT_SHARED_GROUP"] = ""  # amqtt has no shared subscriptions
        print(
            f"no MQTT broker answered at {url}: started an embedded one (amqtt) there", flush=True
        )
    else:
        print(f"MQTT broker at {url}", flush=True)
    # Two checkouts side by side on one broker: their workers' persistent sessions must not
    # share client ids (each would keep taking over the other's).
    env.setdefault(
        "MQTT_CLIENT_ID", f"parking-ingest-{socket.gethostname()}-{os.environ.get('PORT', '8000')}"
    )
    flask = str(Path(sys.executable).with_name("flask"))
    worker = subprocess.Popen([flask, "parking", "ingest"], env=env)  # noqa: S603
    child = subprocess.Popen(command)  # noqa: S603 - the developer's own command
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return child.wait()
    except (KeyboardInterrupt, SystemExit):
        child.terminate()
        return child.wait(10)
    finally:
        for process in (worker,):
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        if broker is not None:
            broker.stop()


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--wrap", nargs=argparse.REMAINDER, help="run this command beside it")
    args = parser.parse_args()
    if args.wrap:
        sys.exit(run_with_ingest(args.wrap))
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
