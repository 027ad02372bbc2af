"""The API keeps the promises of its own ``/openapi.json``, checked by schemathesis.

schemathesis reads the spec the app serves, so every operation a module adds is fuzzed without
a line here. It runs against the app on a real HTTP server (``live_server``, on this run's
database) beside a real localstripe, as each kind of caller: anonymous, a citizen, an official,
an administrator, the health commission (logging in again whenever an operation such as logout
ends a session), a hospital, a parking operator and a sensor gateway (by API key). The callers
act in the world of ``tests/world.py`` (the authorization matrix's): path parameters are
half the time the ids of real objects there (the citizen's application, the hospital's visit,
the operator's lot...), half the time whatever schemathesis invents; its stateful phase follows
the spec's links (create, then read, then act). A caller that can only reach one module is
fuzzed on that module's operations. It fails on any finding of the checks below.

``make test`` runs a bounded pass (``CIVIC_FUZZ_EXAMPLES``, 25 examples per operation by
default); ``make fuzz`` a deep one (thousands), whose report for each caller is also kept in
``bench/results/fuzz-<caller>.txt`` (``make bench`` copies it into ``bench/RESULTS.md``).
Skip it while iterating: ``pytest -m "not fuzz"``.
A failure prints schemathesis's report with a curl command that reproduces it, and the seed
(``CIVIC_FUZZ_SEED=<seed>`` replays the run).
"""

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import report
from core.limiter import limiter
from tests.conftest import BACKEND, PASSWORD
from tests.world import PARAMETERS, World

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


# Who is fuzzed, how they authenticate (a world user's login, or an API key of the world's),
# the operations they can reach at all (None: every operation) and the phases. The first three
# run every phase on every operation; the others, who reach one module, skip the coverage phase
# (its boundary values do not depend on the caller, and the first three cover them) to keep
# ``make test`` inside its budget, and the stateful one where their operations have no links.
EVERY_PHASE = None
ONE_MODULE = "examples,fuzzing,stateful"
NO_LINKS = "examples,fuzzing"
CALLERS: dict[str, tuple[str | None, str | None, str | None]] = {
    "anonymous": (None, None, EVERY_PHASE),
    "citizen": ("citizen", None, EVERY_PHASE),
    "admin": ("admin", None, EVERY_PHASE),
    "official": ("official", r"^/api/v1/civic/", ONE_MODULE),
    "commission": ("commission", r"^/api/v1/health/dashboard", NO_LINKS),
    "hospital": ("hospital", r"^/api/v1/health/", ONE_MODULE),
    "operator": ("operator", r"^/api/v1/parking/", ONE_MODULE),
    "gateway": ("gateway", r"^/api/v1/parking/(sensor-events|ttn/)", NO_LINKS),
}


def schemathesis_config(
    email: str | None, headers: dict[str, str] | None = None, ids: dict[str, str] | None = None
) -> str:
    """TOML: no automatic sign-up; with ``email``, log in as that user (again on a 401); with
    ``headers``, send them (an API key); with ``ids``, fill each path parameter half the time
    with the real object's id."""
    lines = ["warnings = false"]
    if headers:
        lines.append("headers = { " + ", ".join(
            f"{json.dumps(name)} = {json.dumps(value)}" for name, value in headers.items()
        ) + " }")  # fmt: skip
    lines += ["", "[auth]", "auto-signup = false"]
    if email is not None:
        payload = f"{{ email = {json.dumps(email)}, password = {json.dumps(PASSWORD)} }}"
        lines += [
            "",
            "[auth.dynamic.openapi.bearerAuth]",
            'path = "/api/v1/auth/login"',
            f"payload = {payload}",
            'extract_selector = "/access_token"',
        ]
    if ids:
        lines += ["", "[parameters]"]
        lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in ids]
        for name, value in ids.items():
            lines += ["", f"[dictionaries.{name}]", f"values = [{json.dumps(value)}]"]
    return "\n".join(lines) + "\n"


def real_ids(world: World) -> dict[str, str]:
    """Path parameter name -> the id of the world's object of that kind."""
    ids = {name: world.ids[key] for name, key in PARAMETERS.items() if key in world.ids}
    ids["code"] = "PASSPORT-REISSUE"  # the world's published service
    return ids


@pytest.mark.fuzz
@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize(
    "caller",
    # The callers of one module run in the PostgreSQL pass only (production's database), to keep
    # `make test` inside its budget; anonymous, citizen and admin run on both backends.
    [
        pytest.param(name, marks=pytest.mark.postgresql_only) if paths else name
        for name, (_user, paths, _phases) in CALLERS.items()
    ],
)
def test_the_api_keeps_the_promises_of_its_openapi_document(
    caller, live_server, world, tmp_path, monkeypatch, capsys
):
    # Rate limits would answer most fuzzed logins with 429 and hide what lies behind them.
    monkeypatch.setattr(limiter, "enabled", False)
    name, paths, phases = CALLERS[caller]
    email = world.emails.get(name) if name else None
    headers = world.headers[name] if name and name not in world.emails else None
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(email, headers, real_ids(world)))
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
        "run", f"{live_server}/openapi.json",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(EXAMPLES),
    ]  # fmt: skip
    if paths:
        command += ["--include-path-regex", paths]
    if phases:
        command += ["--phases", phases]
    if SEED:
        command += ["--seed", SEED]
    with capsys.disabled():
        print(f"\n== schemathesis as {caller}: {EXAMPLES} examples per operation", flush=True)
        # In a scratch folder: schemathesis and Hypothesis keep caches in the working folder.
        if TIMEOUT:
            bounded = subprocess.run(command, cwd=tmp_path, timeout=TIMEOUT, check=False)
            assert bounded.returncode == 0, f"schemathesis found problems as {caller} (above)"
            return
        # make fuzz: also kept in bench/results/fuzz-<caller>.txt, which make bench reports
        began, started, load = datetime.now(UTC), time.monotonic(), os.getloadavg()
        commit = report.current_commit()
        printed = []
        with subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            for line in process.stdout or ():
                print(line, end="", flush=True)
                printed.append(line)
        report.write_record(
            f"fuzz-{caller}",
            f"make fuzz FUZZ_EXAMPLES={EXAMPLES} (the {caller} caller, on {BACKEND})",
            "".join(printed),
            began,
            time.monotonic() - started,
            " ".join(f"{value:.2f}" for value in load),
            process.returncode,
            commit,
        )
    assert process.returncode == 0, f"schemathesis found problems as {caller} (report above)"


def test_the_fuzz_config_logs_in_as_the_caller_or_sends_its_key_and_points_at_real_objects():
    anonymous = schemathesis_config(None)
    assert "auto-signup = false" in anonymous and "dynamic" not in anonymous
    citizen = schemathesis_config("min@example.test")
    assert '"min@example.test"' in citizen and 'path = "/api/v1/auth/login"' in citizen
    keyed = schemathesis_config(None, {"X-API-Key": "ck_x"}, {"lot_id": "lot-1"})
    assert 'headers = { "X-API-Key" = "ck_x" }' in keyed and "dynamic" not in keyed
    assert '"path.lot_id" = { dictionary = "lot_id", probability = 0.5 }' in keyed
    assert '[dictionaries.lot_id]\nvalues = ["lot-1"]' in keyed
    assert Path(sys.executable).exists()
