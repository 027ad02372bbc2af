"""localstripe, the Stripe stand-in for development and tests, run the way we need it.

- It is GPL software, so it runs as its own process and the app never imports it; only
  :func:`serve`, which runs in that separate process, does.
- Its own entry point listens on every interface (``::``); :func:`serve` binds the host given,
  127.0.0.1 by default, so nothing off the machine can create charges or read customers.
- Its store is a module-level dict that it pickles whole to the fixed path
  ``/tmp/localstripe.pickle`` on every write and loads at start. The path is hard-coded (not
  ``tempfile.gettempdir()``), so a fresh ``TMPDIR`` would not isolate it: every copy on the
  machine would share and overwrite that one file, and each write would get slower as the store
  grows. :func:`serve` therefore replaces that persistence: by default the store lives in memory
  only (every run starts empty and leaves nothing behind); with ``--store FILE`` (``make run``)
  it is kept in our own file, written once per write request and atomically.

``python -m devtools.localstripe --host 127.0.0.1 --port 8420`` serves it until SIGTERM or
SIGINT. :class:`LocalStripe` starts one in a subprocess (standard library only). ``--wrap
COMMAND...`` runs a command (``make run``'s server) with the development localstripe beside it
(see :func:`run_with_localstripe`), its webhook registered, and stops it when the command ends;
with a real ``STRIPE_SECRET_KEY`` set, ``--wrap`` runs the command alone.
"""

import argparse
import http.client
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from devtools.service import (
    ROOT,
    ChildService,
    SigtermPassedOn,
    answers,
    exit_on_sigterm,
    free_port,
)

# Loopback calls must never go through an HTTP proxy taken from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def serve(host: str, port: int, store: Path | None) -> None:
    """Serve localstripe on ``host:port`` until SIGTERM/SIGINT: in memory, or kept in ``store``."""
    from aiohttp import web
    from localstripe import resources, server

    _replace_persistence(resources, store)
    # handle_signals: SIGTERM and SIGINT stop the server and return from run_app.
    web.run_app(server.app, host=host, port=port, print=None, shutdown_timeout=2)


def _replace_persistence(resources: Any, store: Path | None) -> None:
    """Keep the store in memory, or in ``store``: never in the shared /tmp file."""
    # Only save_store_middleware (once per POST/PUT/DELETE) should save, not every item set.
    resources.Store.__setitem__ = dict.__setitem__
    resources.Store.__delitem__ = dict.__delitem__
    resources.store.clear()
    if store is None:
        resources.Store.dump_to_disk = lambda self: None
        return
    if store.exists():
        resources.store.update(pickle.loads(store.read_bytes()))  # noqa: S301 - our own file
    resources.Store.dump_to_disk = lambda self: _write_atomically(store, pickle.dumps(dict(self)))


def _write_atomically(path: Path, data: bytes) -> None:
    """A crash mid-write leaves the previous file, never a truncated one."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


class LocalStripe(ChildService):
    """A localstripe subprocess on loopback: start, clear, register a webhook, stop.

    ``with LocalStripe() as stripe: ...`` serves it on a free port (``stripe.url``) with an
    empty in-memory store, and stops it at the end of the block.
    """

    name = "localstripe"
    module = "devtools.localstripe"

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", store: Path | None = None
    ) -> None:
        super().__init__(port, host)
        self.store = store
        self.url = f"http://{host}:{self.port}"

    def arguments(self) -> list[str]:
        return ["--store", str(self.store)] if self.store is not None else []

    def taken_message(self) -> str:
        return f"{self.url} is already taken (another `make run`?); stop it or set STRIPE_API_BASE"

    def answers(self) -> bool:
        """True once localstripe answers HTTP (an HTTP error is still an answer)."""
        try:
            self._request("GET", "/v1/customers?limit=1")
        except urllib.error.HTTPError:
            return True
        except (OSError, http.client.HTTPException):
            return False
        return True

    def _request(self, method: str, path: str, data: dict[str, str] | None = None) -> bytes:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(self.url + path, data=body, method=method)  # noqa: S310
        request.add_header("Authorization", "Bearer sk_test_local")
        with _OPENER.open(request, timeout=5) as response:
            return bytes(response.read())

    def clear(self) -> None:
        """Forget every object (between tests); registered webhooks stay."""
        self._request("DELETE", "/_config/data")

    def register_webhook(self, name: str, url: str, secret: str) -> None:
        """Have localstripe send events to ``url``, signed with ``secret`` (re-using ``name``
        replaces that webhook)."""
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


def run_with_localstripe(command: list[str], instance: Path = ROOT / "instance") -> int:
    """Run ``command`` (``make run``'s server) with the development localstripe beside it (none
    with a real key), say where the API answers, and treat Ctrl-C as the normal way to stop.

    localstripe takes ``PORT`` + 420 (8420 beside the default 8000), or a free port when that is
    taken, so two checkouts run side by side; ``STRIPE_API_BASE`` names one explicitly. Its URL
    goes to the server in ``STRIPE_API_BASE`` and to ``instance/localstripe.url``, where every
    ``flask`` command of the checkout finds it (``core.config``), until the server stops.
    """
    from core.config import load as load_config  # here: the helper above needs no app code

    config = load_config()
    app_url = f"http://127.0.0.1:{config['PORT']}"
    if os.environ.get("STRIPE_SECRET_KEY"):
        return _serve(command, app_url, dict(os.environ))
    url_file = instance / "localstripe.url"
    with LocalStripe(
        _localstripe_port(config["PORT"]), store=instance / "localstripe.pickle"
    ) as server:
        url_file.write_text(server.url + "\n")
        try:
            webhook = f"{app_url}/api/v1/payments/webhooks/stripe"
            server.register_webhook("civic", webhook, config["STRIPE_WEBHOOK_SECRET"])
            print(f"localstripe on {server.url}, sending webhooks to {webhook}", flush=True)
            return _serve(command, app_url, {**os.environ, "STRIPE_API_BASE": server.url})
        finally:
            url_file.unlink(missing_ok=True)


def _localstripe_port(app_port: int) -> int:
    explicit = os.environ.get("STRIPE_API_BASE")
    if explicit:
        return urllib.parse.urlsplit(explicit).port or 8420
    preferred = app_port + 420
    if preferred <= 65535 and not answers("127.0.0.1", preferred):
        return preferred
    return free_port()


def _serve(command: list[str], app_url: str, env: dict[str, str]) -> int:
    """Run the server until it ends; Ctrl-C (which the server receives too) ends it normally,
    and SIGTERM to this runner alone (a service manager, `kill`) is passed on to the server."""
    signal.signal(signal.SIGTERM, exit_on_sigterm)  # until the server exists: just unwind
    child = subprocess.Popen(command, env=env)  # noqa: S603 - the developer's own command
    try:
        sigterm = SigtermPassedOn(child)
        if _wait_until_listening(app_url, child):
            print(f"\nThe API is at {app_url} (Swagger UI: {app_url}/docs). Ctrl-C stops it.\n")
            sys.stdout.flush()
        return sigterm.status(child.wait())
    except KeyboardInterrupt:
        return 0
    except SystemExit:  # SIGTERM in the instant before it could be passed on
        child.terminate()
        raise
    finally:
        _stop(child)  # at once when it has ended (Ctrl-C reached it too), else after 10 s


def _wait_until_listening(url: str, child: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    address = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        if answers(address.hostname or "127.0.0.1", address.port or 80):
            return True
        time.sleep(0.1)
    return False


def _stop(child: subprocess.Popen[bytes]) -> None:
    """Wait for the server to end, terminating it if it has not within 10 s."""
    try:
        child.wait(10)
    except subprocess.TimeoutExpired:
        child.terminate()
        child.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--store", type=Path, help="keep the objects in this file across runs")
    parser.add_argument(
        "--instance", type=Path, default=ROOT / "instance", help="with --wrap: the store's folder"
    )
    parser.add_argument("--wrap", nargs=argparse.REMAINDER, help="run this command beside it")
    args = parser.parse_args()
    if args.wrap:
        try:
            sys.exit(run_with_localstripe(args.wrap, args.instance))
        except KeyboardInterrupt:  # Ctrl-C while starting: a normal stop too
            sys.exit(0)
    serve(args.host, args.port, args.store)


if __name__ == "__main__":
    main()
