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
import urllib.parse
from pathlib import Path

from devtools.service import ChildService, SigtermPassedOn, answers

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


class EmbeddedBroker(ChildService):
    """amqtt in a subprocess on loopback: ``with EmbeddedBroker() as broker: broker.url``."""

    name = "amqtt"
    module = "devtools.mqtt_broker"

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(port, host)
        self.url = f"mqtt://{host}:{self.port}"


def side_by_side(env: dict[str, str]) -> None:
    """Settings for two checkouts' ``make run`` on one broker (unless set already): their
    workers' persistent sessions must not share client ids (each would keep taking over the
    other's), nor a shared-subscription group (the broker would split the events between them,
    each checkout seeing half)."""
    checkout = f"{socket.gethostname()}-{env.get('PORT', '8000')}"
    env.setdefault("MQTT_CLIENT_ID", f"parking-ingest-{checkout}")
    env.setdefault("MQTT_SHARED_GROUP", f"ingest-{checkout}")


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
    side_by_side(env)
    flask = str(Path(sys.executable).with_name("flask"))
    worker = subprocess.Popen([flask, "parking", "ingest"], env=env)  # noqa: S603
    child = subprocess.Popen(command)  # noqa: S603 - the developer's own command
    sigterm = SigtermPassedOn(child)  # SIGTERM to this runner only: the command ends, then all
    try:
        return sigterm.status(child.wait())
    except KeyboardInterrupt:  # Ctrl-C reached the whole group: the command ends by itself
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.terminate()
            child.wait(10)
        return 0  # a normal stop: `make run` must not say "Error"
    finally:
        for process in (worker,):
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        if broker is not None:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--wrap", nargs=argparse.REMAINDER, help="run this command beside it")
    args = parser.parse_args()
    if args.wrap:
        try:
            sys.exit(run_with_ingest(args.wrap))
        except KeyboardInterrupt:  # Ctrl-C while starting: a normal stop too
            sys.exit(0)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
