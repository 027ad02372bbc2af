"""The authorization matrix: every route of the app's own URL map, called by every kind of
caller, on objects that belong to citizen A, department A, hospital A and operator A; each
answer is checked against the rule declared for the route in ``tests/authz_rules.py``.

One world is built once; every cell is then one request. Cells run in an order that keeps the
world intact for the cells after them: reads first, then writes, then deletions; for each
route the callers who must be refused go before the ones who get through; a call that would
destroy something the other cells need (a key, a gateway, a sensor, a service, a visit,
an application, a reservation) points at a spare made for it. Bodies are the smallest that
pass validation, so a caller without a claim meets the object check (404), not a 422.
"""

import base64
import os
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.routing import Rule as UrlRule
from werkzeug.wrappers import Response

from core import db
from core.auth import service as auth
from core.clock import utcnow
from core.db import Base
from core.limiter import limiter
from devtools import authz_table
from tests.authz_rules import (
    ADMIN,
    CALLERS,
    CITIZEN_B,
    EVERYONE,
    GATEWAY_B,
    HOSPITAL_B,
    IGNORED,
    OFFICIAL_B,
    OK,
    OPERATOR_B,
    RULES,
    route_key,
)
from tests.conftest import PASSWORD
from tests.world import PARAMETERS, V1, H, P, World

SKIPPED_METHODS = {"HEAD", "OPTIONS"}


def app_routes(app: Flask) -> list[tuple[str, UrlRule]]:
    """``(method, rule)`` for every route of the app."""
    return sorted(
        (
            (method, rule)
            for rule in app.url_map.iter_rules()
            for method in sorted((rule.methods or set()) - SKIPPED_METHODS)
        ),
        key=lambda pair: (pair[1].rule, pair[0]),
    )


def test_every_route_has_a_declared_rule_and_every_rule_a_route(app):
    keys = [route_key(method, rule.rule) for method, rule in app_routes(app)]
    undeclared = [key for key in keys if key not in RULES]
    assert not undeclared, (
        "routes without a rule in tests/authz_rules.py (declare who may call them): "
        + ", ".join(undeclared)
    )
    assert sorted(set(RULES) - set(keys)) == [], "rules for routes the app no longer has"


# --- how each route is called -------------------------------------------------------------------

# Parameters that differ by route (a spare to destroy; a name only that route knows).
ROUTE_PARAMETERS: dict[str, dict[str, str]] = {
    f"POST {V1}/civic/applications/<application_id>/cancel": {
        "application_id": "spare_application"
    },
    f"GET {V1}/civic/applications/<application_id>/certificate": {
        "application_id": "approved_application"
    },
    f"GET {V1}/civic/applications/<application_id>/documents/<code>": {"code": "=photo"},
    f"GET {V1}/civic/certificates/<code>": {"code": "certificate"},
    f"POST {V1}/civic/certificates/<code>/revoke": {"code": "certificate"},
    f"GET {V1}/civic/services/<code>": {"code": "=PASSPORT-REISSUE"},
    f"PATCH {V1}/civic/services/<code>": {"code": "=PASSPORT-REISSUE"},
    f"POST {V1}/civic/services/<code>/publish": {"code": "=PASSPORT-REISSUE"},
    f"POST {V1}/civic/services/<code>/retire": {"code": "=SPARE-SERVICE"},
    f"POST {H}/visits/<visit_id>/close": {"visit_id": "spare_visit"},
    "GET /fhir/R4/ChargeItem/<charge_id>": {"charge_id": "billed_charge"},
    f"POST {P}/reservations/<reservation_id>/cancel": {"reservation_id": "spare_reservation"},
    "GET /open311/v2/services/<service_code>.<any(json, xml):fmt>": {"service_code": "=POTHOLE"},
    "GET /ngsi-ld/v1/entities/<entity_id>": {"entity_id": "lot_urn"},
    "GET /dashboard/health/assets/<path:filename>": {"filename": "=dashboard.js"},
    "GET /docs/assets/<path:filename>": {"filename": "=swagger-ui-bundle.js"},
    "GET /static/<path:filename>": {"filename": "=none.txt"},
}


def body_for(key: str, world: World) -> dict[str, Any]:
    """Request keyword arguments: the smallest body that passes validation."""
    ids = world.ids
    now = utcnow()
    bodies: dict[str, dict[str, Any]] = {
        f"POST {V1}/civic/applications/<application_id>/pay": {"json": {}},
        f"POST {V1}/civic/applications/<application_id>/answers": {
            "data": {"answers": "{}"},
            "content_type": "multipart/form-data",
        },
        f"POST {V1}/civic/applications/<application_id>/request-info": {
            "json": {"note": "Please send a clearer photo."}
        },
        f"POST {V1}/civic/applications/<application_id>/approve": {"json": {}},
        f"POST {V1}/civic/applications/<application_id>/reject": {
            "json": {"reason": "Not eligible."}
        },
        f"POST {V1}/civic/certificates/<code>/revoke": {"json": {"reason": "Issued in error."}},
        f"POST {H}/bills/<bill_id>/refunds": {"json": {"amount": 1000, "reason": "overcharged"}},
        f"POST {H}/visits/<visit_id>/charges": {
            "json": {
                "items": [
                    {"code": "XRAY", "description": "x-ray", "quantity": 1, "unit_price": 5000}
                ]
            }
        },
        f"PATCH {H}/visits/<visit_id>/charges/<charge_id>": {
            "json": {"quantity": 2, "reason": "typo"}
        },
        f"POST {H}/visits/<visit_id>/charges/<charge_id>/void": {"json": {"reason": "mistake"}},
        f"PATCH {P}/lots/<lot_id>": {"json": {"name": "Lot A, renamed"}},
        f"POST {P}/lots/<lot_id>/spaces": {"json": [{"code": "Z999", "kind": "car"}]},
        f"PUT {P}/lots/<lot_id>/tariff": {
            "json": {
                "free_minutes": 10,
                "unit_minutes": 10,
                "unit_price": 1000,
                "daily_max": 30000,
                "currency": "KRW",
            }
        },
        f"PATCH {P}/spaces/<space_id>": {"json": {"kind": "car"}},
        f"POST {P}/sensor-events": {
            "json": {
                "events": [
                    {"device_id": ids["device"], "occupied": True, "observed_at": now.isoformat()}
                ]
            }
        },
        f"POST {P}/ttn/uplink": {
            "json": {
                "end_device_ids": {"device_id": ids["device"]},
                "received_at": now.isoformat(),
                "uplink_message": {"f_port": 1, "frm_payload": base64.b64encode(b"\x01").decode()},
            }
        },
        f"POST {P}/reservations/<reservation_id>/pay": {"json": {}},
        "POST /open311/v2/requests.<any(json, xml):fmt>": {
            "data": {
                "service_code": "POTHOLE",
                "lat": "37.5665",
                "long": "126.9780",
                "attribute[size]": "small",
            }
        },
    }
    if key in bodies:
        return bodies[key]
    method = key.split(" ", 1)[0]
    return {"json": {}} if method in ("POST", "PUT", "PATCH") else {}


def url_for(key: str, rule: UrlRule, world: World) -> str:
    values: dict[str, str] = {}
    overrides = ROUTE_PARAMETERS.get(key, {})
    for argument in rule.arguments:
        if argument == "fmt":
            values[argument] = "json"
            continue
        name = overrides.get(argument) or PARAMETERS.get(argument)
        assert name, f"{key}: no value for <{argument}>; add it to PARAMETERS"
        values[argument] = name[1:] if name.startswith("=") else world.ids[name]
    url = rule.rule
    for argument in rule.arguments:
        url = url.replace(f"<{argument}>", values[argument])
    for converter in ("<path:filename>", "<any(json, xml):fmt>"):
        url = url.replace(converter, values.get(converter.split(":")[-1].rstrip(">"), ""))
    return url + QUERIES.get(key, "")


QUERIES = {
    f"GET {P}/lots/<lot_id>/stats": "?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
    f"GET {P}/availability": "?lat=37.5663&lon=126.9779",
    "GET /ngsi-ld/v1/entities": "?type=OffStreetParking",
}


def count_rows(app: Flask) -> tuple[int, ...]:
    """Rows per table, in one statement (tests.conftest.count_rows asks once per table)."""
    counts = [
        select(func.count()).select_from(table).scalar_subquery()
        for table in Base.metadata.sorted_tables
    ]
    with app.app_context(), db.engine().connect() as connection:
        return tuple(connection.execute(select(*counts)).one())


PHASES = {"GET": 0, "PUT": 1, "PATCH": 1, "POST": 1, "DELETE": 2}
LAST = {f"POST {V1}/auth/logout"}


def order(key: str) -> tuple[int, str]:
    method = key.split(" ", 1)[0]
    return (3 if key in LAST else PHASES[method], key)


def verdict(expected: int | str, method: str, status: int, body: Any) -> bool:
    """Through: a read answers 2xx; a write anything but a refusal (401, 403, 404), a rate
    limit (429) or a server error (its body may be deliberately incomplete: 400/409/422)."""
    if expected == OK and method == "GET":
        return 200 <= status < 300
    if expected == OK:
        return status < 500 and status not in (401, 403, 404, 429)
    if expected == IGNORED:
        return status == 200 and isinstance(body, dict) and body.get("applied") == 0
    return status == expected


def fresh_login(app: Flask, world: World, caller: str) -> dict[str, str]:
    """A new login for a cell that ends it (logout), so later cells keep theirs."""
    if caller not in world.emails:
        return world.headers[caller]
    with app.app_context():
        token = auth.login(world.emails[caller], PASSWORD).access_token
    return {"Authorization": f"Bearer {token}"}


# What a caller without a claim must never see in any answer (on routes that are not open to
# everyone): the ids of the objects of the A side.
PRIVATE_TO_A: dict[str, tuple[str, ...]] = {
    CITIZEN_B: (
        "application",
        "spare_application",
        "approved_application",
        "notification",
        "card",
        "payment",
        "bill",
        "settlement",
        "reservation",
        "spare_reservation",
    ),
    OFFICIAL_B: ("application", "spare_application", "approved_application"),
    HOSPITAL_B: ("visit", "spare_visit", "charge", "billed_charge", "bill"),
    OPERATOR_B: ("spare_gateway", "spare_sensor", "reservation", "spare_reservation"),
    GATEWAY_B: ("spare_gateway", "spare_sensor", "reservation"),
}


def send(
    client: FlaskClient, method: str, url: str, headers: dict[str, str], sent: dict[str, Any]
) -> Response:
    """One cell's request; an exception the app let out (the test client re-raises them) is
    answered as the 500 a server would give, so the cell is reported with the others."""
    try:
        return client.open(url, method=method, headers=headers, **sent)
    except Exception as error:
        return Response(repr(error)[:300], status=500)


# A child of someone else's under a parent of the caller's own: 404 too (the matrix's cells
# name A's parent and A's child together). ``{name}`` is a world id.
MIXED_PARENTS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    (
        "PATCH",
        f"{H}/visits/{{visit_b}}/charges/{{charge}}",
        HOSPITAL_B,
        {"json": {"quantity": 2, "reason": "typo"}},
    ),
    (
        "POST",
        f"{H}/visits/{{visit_b}}/charges/{{charge}}/void",
        HOSPITAL_B,
        {"json": {"reason": "mistake"}},
    ),
    ("DELETE", f"{V1}/admin/organisations/{{org:hospital_b}}/api-keys/{{spare_key}}", ADMIN, {}),
)


def test_every_route_answers_every_caller_as_declared(
    app: Flask, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = {route_key(method, rule.rule): rule for method, rule in app_routes(app)}
    undeclared = sorted(set(routes) - set(RULES))
    assert not undeclared, f"routes without a rule in tests/authz_rules.py: {undeclared}"
    client = app.test_client()
    wrong: list[str] = []
    rows_before = count_rows(app)
    for method, pattern, caller, sent in MIXED_PARENTS:
        url = re.sub(r"\{([^}]+)\}", lambda name: world.ids[name[1]], pattern)
        response = send(client, method, url, world.headers[caller], sent)
        if response.status_code != 404:
            wrong.append(
                f"{method} {pattern} as {caller}: expected 404, got {response.status_code}"
            )
    if count_rows(app) != rows_before:
        wrong.append("a refused mixed-parent call wrote rows")
    cells = 0
    for key in sorted(routes, key=order):
        rule = RULES[key]
        method = key.split(" ", 1)[0]
        url = url_for(key, routes[key], world)
        refused_first = sorted(CALLERS, key=lambda c: rule.expected(c) in (OK, IGNORED))
        writes = method != "GET"
        rows_before = count_rows(app) if writes else ()
        for caller in refused_first:
            expected = rule.expected(caller)
            if writes and expected in (OK, IGNORED) and rows_before:
                # every refusal is in: none of them may have written anything
                if count_rows(app) != rows_before:
                    wrong.append(f"{key}: a refused call wrote rows")
                rows_before = ()
            headers = fresh_login(app, world, caller) if key in LAST else world.headers[caller]
            limiter.reset()  # the login and registration limits count per address
            response = send(client, method, url, headers, body_for(key, world))
            cells += 1
            body = response.get_json(silent=True)
            if os.environ.get("AUTHZ_DEBUG"):
                print("AUTHZ", key, caller, response.status_code, response.get_data()[:80])
            if not verdict(expected, method, response.status_code, body):
                wrong.append(
                    f"{key} as {caller}: expected {expected}, got {response.status_code} "
                    f"{response.get_data(as_text=True)[:160]!r}"
                )
            if rule.ok != EVERYONE and caller in PRIVATE_TO_A:
                raw = response.get_data()
                seen = [n for n in PRIVATE_TO_A[caller] if world.ids[n].encode() in raw]
                if seen:
                    wrong.append(f"{key} as {caller}: the answer shows A's {seen}")
        if rows_before and count_rows(app) != rows_before:
            wrong.append(f"{key}: a refused call wrote rows")
    with capsys.disabled():
        print(
            f"\nauthorization matrix: {len(routes)} routes x {len(CALLERS)} callers = "
            f"{cells} cells (+ {len(MIXED_PARENTS)} mixed-parent cells), "
            f"{len(wrong)} answered otherwise than declared"
        )
    assert cells == len(routes) * len(CALLERS)
    assert not wrong, f"{len(wrong)} cells answered otherwise than declared:\n" + "\n".join(wrong)


def test_someone_elses_object_is_declared_only_where_the_path_names_one(app):
    rules = {route_key(method, rule.rule): rule for method, rule in app_routes(app)}
    without_object = [
        key
        for key, url_rule in rules.items()
        if key in RULES and RULES[key].not_found and not set(url_rule.arguments) - {"fmt"}
    ]
    assert without_object == []


def test_the_table_is_rewritten_between_its_markers(tmp_path):
    stale = f"# Title\n\n{authz_table.START}\n| old |\n{authz_table.END}\n\nafter\n"
    readme = tmp_path / "README.md"
    readme.write_text(stale)
    assert authz_table.write(readme) is True
    assert readme.read_text() == f"# Title\n\n{authz_table.render()}\n\nafter\n"
    assert authz_table.write(readme) is False


def test_the_readme_carries_the_generated_table() -> None:
    readme = authz_table.README.read_text()
    assert authz_table.render() in readme, "README's table is stale: run `make authz-table`"
