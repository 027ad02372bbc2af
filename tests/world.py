"""One world of objects for tests that act as every kind of caller: users of each role,
hospitals, parking operators (with gateway keys) and an Open311 client, A and B of each, and the
objects of the A side (a citizen's application, card, payment, bill, reservation; a hospital's
visit and charges; an operator's lot, spaces and sensors). The authorization matrix
(``tests/test_authz_matrix.py``) calls every route on them; the schemathesis pass
(``tests/test_openapi_fuzz.py``) points its path parameters at them.

``world`` is the fixture (built through the app itself); ``PARAMETERS`` maps a path
parameter's name to the key of the object it names in ``World.ids``.
"""

import base64
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from sqlalchemy import select

from civic.models import Application
from civic.service import credit
from core import db
from core.auth import service as auth
from core.clock import utcnow
from tests.authz_rules import (
    ANONYMOUS,
    CITIZEN,
    CITIZEN_B,
    GATEWAY,
    GATEWAY_B,
    HOSPITAL,
    HOSPITAL_B,
    OFFICIAL,
    OFFICIAL_B,
    OPEN311,
    OPERATOR,
    OPERATOR_B,
)
from tests.civic.conftest import PNG, passport_service, pothole_service
from tests.conftest import PASSWORD
from tests.health.conftest import photo

V1 = "/api/v1"
H = f"{V1}/health"
P = f"{V1}/parking"
CONSENT = {"consent_off_session": True, "consent_text_version": "2026-11"}

# --- the world --------------------------------------------------------------------------------


@dataclass
class World:
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    emails: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)


class Caller:
    """Calls the app with a caller's credentials; fails loudly when setting up goes wrong."""

    def __init__(self, app: Flask, headers: dict[str, str]) -> None:
        self.client = app.test_client()
        self.headers = headers

    def __call__(self, method: str, url: str, expected: int | None = None, **kw: Any) -> Any:
        headers = {**self.headers, **kw.pop("headers", {})}
        response = self.client.open(url, method=method, headers=headers, **kw)
        if expected is not None:
            assert response.status_code == expected, (
                f"setting up: {method} {url}: {response.status_code} "
                f"{response.get_data(as_text=True)[:400]}"
            )
        return response.get_json(silent=True)


def build_world(app: Flask) -> World:
    world = World()
    with app.app_context():
        for name, role, department in (
            (CITIZEN, "citizen", None),
            (CITIZEN_B, "citizen", None),
            (OFFICIAL, "official", "CIVIL-REG"),
            (OFFICIAL_B, "official", "ROADS"),
            ("admin", "admin", None),
            ("commission", "health_commission", None),
        ):
            email = f"{name}-{uuid.uuid4().hex[:6]}@example.test"
            user = auth.create_user(
                email=email,
                password=PASSWORD,
                name=f"Test {name}",
                role=role,
                department_code=department,
            )
            world.ids[f"user:{name}"] = user.id
            world.emails[name] = email
            token = auth.login(email, PASSWORD).access_token
            world.headers[name] = {"Authorization": f"Bearer {token}"}
        for name, kind in (
            (HOSPITAL, "hospital"),
            (HOSPITAL_B, "hospital"),
            (OPERATOR, "parking_operator"),
            (OPERATOR_B, "parking_operator"),
            (OPEN311, "open311_client"),
        ):
            organisation = auth.create_organisation(f"Org {name} {uuid.uuid4().hex[:6]}", kind)
            world.ids[f"org:{name}"] = organisation.id
            world.headers[name] = {"X-API-Key": auth.issue_api_key(organisation.id).secret}
        spare_key = auth.issue_api_key(world.ids[f"org:{HOSPITAL}"], "spare")
        world.ids["spare_key"] = spare_key.key.id
    world.headers[ANONYMOUS] = {}
    call = {name: Caller(app, headers) for name, headers in world.headers.items()}

    # civic: departments, services (one spare to retire), applications
    admin = call["admin"]
    for code in ("CIVIL-REG", "ROADS"):
        admin(
            "POST",
            f"{V1}/civic/departments",
            201,
            json={"code": code, "name": {"ko": code, "en": code, "zh": code}},
        )
    for content in (
        passport_service(fee=None),
        passport_service(code="SPARE-SERVICE", fee=None),
        pothole_service(),
    ):
        admin("POST", f"{V1}/civic/services", 201, json=content)
        admin("POST", f"{V1}/civic/services/{content['code']}/publish", 200)

    def apply() -> str:
        data = {
            "service": "PASSPORT-REISSUE",
            "answers": '{"full_name": "Kim Minji", "reason": "lost", "birth_date": "1990-04-01"}',
            "photo": (io.BytesIO(PNG), "me.png"),
        }
        created = call[CITIZEN](
            "POST", f"{V1}/civic/applications", 201, data=data, content_type="multipart/form-data"
        )
        return str(created["id"])

    world.ids["application"] = apply()
    world.ids["spare_application"] = apply()
    approved = apply()
    call[OFFICIAL]("POST", f"{V1}/civic/applications/{approved}/claim", 200)
    call[OFFICIAL]("POST", f"{V1}/civic/applications/{approved}/approve", 200, json={})
    world.ids["certificate"] = call[CITIZEN](
        "GET", f"{V1}/civic/applications/{approved}/certificate", 200
    )["code"]
    world.ids["approved_application"] = approved
    filed = call[OPEN311](
        "POST",
        "/open311/v2/requests.json",
        200,
        data={
            "service_code": "POTHOLE",
            "lat": "37.5665",
            "long": "126.9780",
            "attribute[size]": "large",
        },
    )
    world.ids["open311_request"] = filed[0]["service_request_id"]
    with app.app_context():
        token = db.session.scalar(
            select(Application.open311_token).where(
                Application.id == filed[0]["service_request_id"]
            )
        )
        assert token, "the Open311 request has a token"
        world.ids["open311_token"] = token
        credit.post_event(world.ids[f"user:{CITIZEN}"], 100, "test", "Test agency")
        db.session.commit()

    # payments: a saved card
    card = call[CITIZEN](
        "POST", f"{V1}/payments/methods", 201, json={"payment_method": "pm_card_visa", **CONSENT}
    )
    world.ids["card"] = card["id"]

    # health: citizen A joins pay-later; hospital A's visits, charges, a bill, a settlement
    call[CITIZEN](
        "PUT",
        f"{H}/face",
        200,
        data={"image": (io.BytesIO(photo("obama")), "selfie.jpg", "image/jpeg"), "consent": "true"},
    )
    call[CITIZEN]("POST", f"{H}/credit-line", 201, json={"terms_version": "2026-11"})

    def open_visit() -> str:
        code = call[CITIZEN]("GET", f"{H}/checkin-code", 200)["code"]
        return str(call[HOSPITAL]("POST", f"{H}/visits", 201, json={"checkin_code": code})["id"])

    def charge(visit_id: str) -> str:
        item = {"code": "CONSULT", "description": "consult", "quantity": 1, "unit_price": 10000}
        created = call[HOSPITAL](
            "POST", f"{H}/visits/{visit_id}/charges", 201, json={"items": [item]}
        )
        return str(created["charges"][-1]["id"])

    billed = open_visit()
    world.ids["billed_charge"] = charge(billed)
    world.ids["bill"] = call[HOSPITAL]("POST", f"{H}/visits/{billed}/close", 201)["id"]
    world.ids["visit"] = open_visit()
    world.ids["charge"] = charge(world.ids["visit"])
    world.ids["spare_visit"] = open_visit()
    settled = call[CITIZEN](
        "POST",
        f"{H}/settlements",
        201,
        data={"image": (io.BytesIO(photo("obama2")), "selfie.jpg", "image/jpeg")},
    )
    world.ids["settlement"] = settled["id"]
    world.ids["payment"] = settled["payment_id"]
    # hospital B's own visit (citizen A walked in there too), for the mixed-parent cells
    code = call[CITIZEN]("GET", f"{H}/checkin-code", 200)["code"]
    world.ids["visit_b"] = call[HOSPITAL_B](
        "POST", f"{H}/visits", 201, json={"checkin_code": code}
    )["id"]
    # the settlement left a message in citizen A's inbox
    world.ids["notification"] = call[CITIZEN]("GET", f"{V1}/me/notifications", 200)[0]["id"]

    # parking: operator A's lot, spaces, sensors, gateways; citizen A's reservations
    operator = call[OPERATOR]
    world.headers[GATEWAY] = {
        "X-API-Key": operator("POST", f"{P}/gateways", 201, json={"name": "gw"})["api_key"]
    }
    world.headers[GATEWAY_B] = {
        "X-API-Key": call[OPERATOR_B]("POST", f"{P}/gateways", 201, json={"name": "gw"})["api_key"]
    }
    world.ids["spare_gateway"] = operator("POST", f"{P}/gateways", 201, json={"name": "spare"})[
        "id"
    ]
    lot = operator(
        "POST",
        f"{P}/lots",
        201,
        json={"name": "Lot A", "address": "1 Sejong-daero", "lat": 37.5663, "lon": 126.9779},
    )
    world.ids["lot"] = lot["id"]
    spaces = operator(
        "POST",
        f"{P}/lots/{lot['id']}/spaces",
        201,
        json=[{"code": f"A{i:03d}", "kind": "car"} for i in range(3)],
    )
    world.ids["space"] = spaces[0]["id"]
    sensors = operator(
        "POST",
        f"{P}/sensors",
        201,
        json=[
            {"device_id": f"dev-{lot['id'][:8]}-{i}", "space_id": s["id"]}
            for i, s in enumerate(spaces)
        ],
    )
    world.ids["device"] = f"dev-{lot['id'][:8]}-0"
    world.ids["spare_sensor"] = sensors[2]["id"]
    operator(
        "PUT",
        f"{P}/lots/{lot['id']}/tariff",
        200,
        json={
            "free_minutes": 0,
            "unit_minutes": 10,
            "unit_price": 1000,
            "daily_max": 30000,
            "currency": "KRW",
        },
    )

    def reserve(space: str, start: int) -> dict[str, Any]:
        base = utcnow()
        return call[CITIZEN](
            "POST",
            f"{P}/reservations",
            201,
            json={
                "space_id": space,
                "starts_at": (base + timedelta(minutes=start)).isoformat(),
                "ends_at": (base + timedelta(minutes=start + 60)).isoformat(),
                "vehicle_plate": "12가3456",
            },
        )

    world.ids["reservation"] = reserve(spaces[0]["id"], 30)["id"]
    world.ids["spare_reservation"] = reserve(spaces[1]["id"], 30)["id"]
    return world


PARAMETERS: dict[str, str] = {
    "organisation_id": f"org:{HOSPITAL}",
    "key_id": "spare_key",
    "notification_id": "notification",
    "application_id": "application",
    "payment_id": "payment",
    "card_id": "card",
    "bill_id": "bill",
    "settlement_id": "settlement",
    "visit_id": "visit",
    "charge_id": "charge",
    "gateway_id": "spare_gateway",
    "lot_id": "lot",
    "space_id": "space",
    "sensor_id": "spare_sensor",
    "reservation_id": "reservation",
    "request_id": "open311_request",
    "token": "open311_token",
}


@pytest.fixture
def world(
    app: Flask, stripe_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[World]:
    # uploads and the certificate key stay in this test's folder, not the checkout's instance/
    monkeypatch.setitem(app.config, "CIVIC_UPLOAD_DIR", str(tmp_path / "uploads"))
    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    monkeypatch.setitem(app.config, "CIVIC_SIGNING_KEY", key.decode())
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))
    monkeypatch.setitem(
        app.config, "FACE_KEY", base64.b64encode(b"test-face-key-32-bytes-long-abcd").decode()
    )
    monkeypatch.setitem(app.config, "HEALTH_AUTO_CHARGES_PER_SECOND", 0)
    monkeypatch.setitem(app.config, "PARKING_AVAILABILITY_CACHE_SECONDS", 0)
    app.extensions.pop("health_face_cipher", None)
    built = build_world(app)
    built.ids["lot_urn"] = f"urn:ngsi-ld:OffStreetParking:{built.ids['lot']}"
    yield built
    app.extensions.pop("health_face_cipher", None)
