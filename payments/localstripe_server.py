"""localstripe, the Stripe stand-in for development and tests, run the way we need it.

- It is GPL software, so it runs as its own process and is never imported by the app.
- Its own entry point listens on every interface; this one binds the address given
  (127.0.0.1 by default).
- It pickles its whole store to a fixed /tmp file on every write and loads it at start, so
  two copies share state by accident. Here the tests' copy keeps its store in memory only (no
  run sees another's data, and writes do not slow down as the store grows), and ``make run``'s
  copy keeps it in ``instance/localstripe.pickle``, beside the SQLite file whose customer and
  card ids refer to it.

``python -m payments.localstripe_server --port 8420`` serves it; :class:`LocalStripe` starts
one in a subprocess for the test suite; ``--wrap COMMAND...`` runs a command (``make run``'s
server) with the development localstripe beside it (``STRIPE_API_BASE``, by default
127.0.0.1:8420), its webhook registered, and stops it when the command ends. With a real
``STRIPE_SECRET_KEY`` set, ``--wrap`` runs the command alone.
"""

import argparse
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType

from core.config import load as load_config

ROOT = Path(__file__).resolve().parent.parent


def serve(host: str, port: int, store: Path | None) -> None:
    """Serve localstripe on ``host:port``: in memory only, or kept in the ``store`` file."""
    from aiohttp import web
    from localstripe import resources, server

    resources.store.clear()
    if store is None:
        resources.Store.dump_to_disk = lambda self: None
    else:
        if store.exists():
            resources.store.update(pickle.loads(store.read_bytes()))  # noqa: S301 - our own file
        resources.Store.dump_to_disk = lambda self: store.write_bytes(pickle.dumps(dict(self)))
    web.run_app(server.app, host=host, port=port, print=None, handle_signals=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalStripe:
    """A localstripe subprocess on loopback: start, clear, register a webhook, stop."""

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", store: Path | None = None
    ) -> None:
        self.host = host
        self.store = store
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> "LocalStripe":
        if self._answers():
            raise RuntimeError(
                f"{self.url} is already taken (another `make run`?); stop it or set STRIPE_API_BASE"
            )
        command = [sys.executable, "-m", "payments.localstripe_server"]
        if self.store is not None:
            command += ["--store", str(self.store)]
        self._process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [*command, "--host", self.host, "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"localstripe exited at start: {stderr[-2000:]}")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"localstripe did not answer on {self.url} within {timeout}s")

    def _answers(self) -> bool:
        try:
            self._request("GET", "/v1/customers?limit=1")
        except (urllib.error.URLError, ConnectionError):
            return False
        return True

    def _request(self, method: str, path: str, data: dict[str, str] | None = None) -> bytes:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.url + path, data=body, method=method)  # noqa: S310
        request.add_header("Authorization", "Bearer sk_test_local")
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return bytes(response.read())

    def clear(self) -> None:
        """Forget every object (between tests)."""
        self._request("DELETE", "/_config/data")

    def register_webhook(self, name: str, url: str, secret: str) -> None:
        """Have localstripe send signed events to ``url``."""
        self._request("POST", f"/_config/webhooks/{name}", {"url": url, "secret": secret})

    def list(self, resource: str) -> list[dict[str, object]]:
        """Every object of a kind, e.g. ``payment_intents`` (for tests)."""
        found: list[dict[str, object]] = []
        after = ""
        while True:
            query = f"?limit=100{'&starting_after=' + after if after else ''}"
            page = json.loads(self._request("GET", f"/v1/{resource}{query}"))
            found.extend(page["data"])
            if not page.get("has_more") or not page["data"]:
                return found
            after = str(page["data"][-1]["id"])

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)

    def __enter__(self) -> "LocalStripe":
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_with_localstripe(command: list[str]) -> int:
    """Run ``command`` with the development localstripe beside it (none with a real key)."""
    if os.environ.get("STRIPE_SECRET_KEY"):
        return subprocess.call(command)  # noqa: S603 - the developer's own command
    config = load_config()
    app_port = config["PORT"]
    port = urllib.parse.urlsplit(config["STRIPE_API_BASE"]).port or 8420
    with LocalStripe(port, store=ROOT / "instance" / "localstripe.pickle") as server:
        webhook = f"http://127.0.0.1:{app_port}/api/v1/payments/webhooks/stripe"
        server.register_webhook("civic", webhook, config["STRIPE_WEBHOOK_SECRET"])
        print(f"localstripe on {server.url}, sending webhooks to {webhook}", flush=True)
        child = subprocess.Popen(command)  # noqa: S603 - the developer's own command
        signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so `with` stops localstripe too
        try:
            return child.wait()
        except (KeyboardInterrupt, SystemExit):
            child.terminate()
            return child.wait(10)


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--store", type=Path, help="keep the objects in this file across runs")
    parser.add_argument("--wrap", nargs=argparse.REMAINDER, help="run this command beside it")
    args = parser.parse_args()
    if args.wrap:
        sys.exit(run_with_localstripe(args.wrap))
    serve(args.host, args.port, args.store)


if __name__ == "__main__":
    main()
