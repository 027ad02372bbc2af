"""localstripe, the Stripe stand-in for development and tests, run the way we need it.

- It is GPL software, so it runs as its own process and is never imported by the app.
- Its own entry point listens on every interface; this one binds the address given
  (127.0.0.1 by default).
- It pickles its whole store to a fixed /tmp file on every write and loads it at start: this
  one starts empty and keeps the store in memory only, so runs never see each other's data
  and writes do not slow down as the store grows.

``python -m payments.localstripe_server --port 8420`` serves it; :class:`LocalStripe` starts
one in a subprocess for ``make run`` and the test suite (standard library only).
"""

import argparse
import json
import os
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

ROOT = Path(__file__).resolve().parent.parent


def serve(host: str, port: int) -> None:
    """Serve localstripe on ``host:port`` with an empty, memory-only store."""
    from aiohttp import web
    from localstripe import resources, server

    resources.Store.dump_to_disk = lambda self: None
    resources.store.clear()
    web.run_app(server.app, host=host, port=port, print=None, handle_signals=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalStripe:
    """A localstripe subprocess on loopback: start, clear, register a webhook, stop."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> "LocalStripe":
        command = [sys.executable, "-m", "payments.localstripe_server"]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("STRIPE_PORT", "8420")))
    args = parser.parse_args()
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
