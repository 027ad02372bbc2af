"""The API keeps the promises of its own ``/openapi.json``, checked by schemathesis.

schemathesis reads the spec the app serves, so every operation a module adds is fuzzed without
a line here. It runs against the app on a real HTTP server (``live_server``, on this run's
database) beside a real localstripe, once anonymous, once as a citizen and once as an
administrator (logging in again whenever an operation such as logout ends its session), and
fails on any finding of these checks.

``make test`` runs a bounded pass (``CIVIC_FUZZ_EXAMPLES``, 25 examples per operation by
default); ``make fuzz`` a deep one (thousands). Skip it while iterating: ``pytest -m "not fuzz"``.
A failure prints schemathesis's report with a curl command that reproduces it, and the seed
(``CIVIC_FUZZ_SEED=<seed>`` replays the run).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.limiter import limiter
from tests.conftest import PASSWORD

CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
)
EXAMPLES = int(os.environ.get("CIVIC_FUZZ_EXAMPLES", "25"))
SEED = os.environ.get("CIVIC_FUZZ_SEED", "")
# The bounded pass takes well under a minute per caller; a deep one as long as it needs.
TIMEOUT = 600 if EXAMPLES <= 100 else 0


def schemathesis_config(email: str | None) -> str:
    """TOML: no automatic sign-up; with ``email``, log in as that user (again on a 401)."""
    lines = ["warnings = false", "", "[auth]", "auto-signup = false"]
    if email is not None:
        payload = f"{{ email = {json.dumps(email)}, password = {json.dumps(PASSWORD)} }}"
        lines += [
            "",
            "[auth.dynamic.openapi.bearerAuth]",
            'path = "/api/v1/auth/login"',
            f"payload = {payload}",
            'extract_selector = "/access_token"',
        ]
    return "\n".join(lines) + "\n"


@pytest.mark.fuzz
@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("caller", ["anonymous", "citizen", "admin"])
def test_the_api_keeps_the_promises_of_its_openapi_document(
    caller, live_server, stripe_server, make_account, tmp_path, monkeypatch, capsys
):
    # Rate limits would answer most fuzzed logins with 429 and hide what lies behind them.
    monkeypatch.setattr(limiter, "enabled", False)
    email = None if caller == "anonymous" else make_account(caller).user.email
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(email))
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
        "run", f"{live_server}/openapi.json",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(EXAMPLES),
    ]  # fmt: skip
    if SEED:
        command += ["--seed", SEED]
    with capsys.disabled():
        print(f"\n== schemathesis as {caller}: {EXAMPLES} examples per operation", flush=True)
        # In a scratch folder: schemathesis and Hypothesis keep caches in the working folder.
        result = subprocess.run(command, cwd=tmp_path, timeout=TIMEOUT or None, check=False)
    assert result.returncode == 0, f"schemathesis found problems as {caller} (report above)"


def test_the_fuzz_config_logs_in_as_the_caller():
    anonymous = schemathesis_config(None)
    assert "auto-signup = false" in anonymous and "dynamic" not in anonymous
    citizen = schemathesis_config("min@example.test")
    assert '"min@example.test"' in citizen and 'path = "/api/v1/auth/login"' in citizen
    assert Path(sys.executable).exists()
