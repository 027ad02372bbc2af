"""The app under gunicorn, started the way production starts it (gunicorn.conf.py)."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from core.config import DEV_SECRET
from tests.conftest import PRODUCTION_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
PRODUCTION = PRODUCTION_SETTINGS


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _gunicorn(port: int, **env: str) -> subprocess.Popen[str]:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("APP_ENV", *PRODUCTION, "FLASK_APP")
    }
    environment.update(env, WEB_CONCURRENCY="1", GUNICORN_THREADS="2")
    return subprocess.Popen(
        [str(GUNICORN), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_under_gunicorn_an_unset_app_env_is_production_and_refuses_development_secrets(app):
    server = _gunicorn(_free_port(), DATABASE_URL=app.config["DATABASE_URL"], SECRET_KEY=DEV_SECRET)
    try:
        output, _ = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode != 0
    assert "APP_ENV='production' is a production environment" in output
    for named in ("SECRET_KEY", "JWT_SECRET_KEY", "STRIPE_SECRET_KEY", "REDIS_URL"):
        assert named in output


def test_under_gunicorn_with_production_settings_responses_carry_no_version_banner(app):
    port = _free_port()
    server = _gunicorn(port, DATABASE_URL=app.config["DATABASE_URL"], **PRODUCTION)
    try:
        response = _get_when_up(f"http://127.0.0.1:{port}/healthz", server)
        headers = response.headers
        assert response.status == 200
        assert headers["Server"] == "gunicorn" and not re.search(r"\d", headers["Server"])
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
    finally:
        server.terminate()
        server.communicate(timeout=30)


def _get_when_up(url: str, server: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"gunicorn exited: {server.communicate()[0][-2000:]}")
        try:
            return urllib.request.urlopen(url, timeout=2)
        # The master listens before a worker has loaded the app: a request may connect and
        # then wait longer than its timeout while the worker boots.
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    pytest.fail("gunicorn did not answer within 30 s")
