"""Fixtures of the health tests: the face photos, hospitals, citizens who joined pay-later,
and one-line helpers for visits, bills and settlements over HTTP."""

import base64
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from civic.service import credit
from core.auth import service as auth
from payments.service import charges
from tests.conftest import Account, ApiClient

FACES = Path(__file__).parent / "fixtures" / "faces"
H = "/api/v1/health"
CONSENT = {"consent_off_session": True, "consent_text_version": "2026-11"}
TERMS = "2026-11"


def photo(name: str) -> bytes:
    """A fixture photo's bytes: obama, obama2, obama3, biden."""
    return (FACES / f"{name}.jpg").read_bytes()


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def blank_photo() -> bytes:
    """A photo with no face: a flat colour."""
    return jpeg(Image.new("RGB", (640, 480), (180, 160, 140)))


def two_faces_photo() -> bytes:
    """Two people side by side: obama and biden pasted into one picture."""
    left = Image.open(FACES / "obama.jpg").convert("RGB")
    right = Image.open(FACES / "biden.jpg").convert("RGB")
    left.thumbnail((600, 600))
    right.thumbnail((600, 600))
    canvas = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    return jpeg(canvas)


def upload(image: bytes, name: str = "selfie.jpg", **fields: Any) -> dict[str, Any]:
    return {"image": (io.BytesIO(image), name, "image/jpeg"), **fields}


@dataclass
class Hospital:
    id: str
    key: str
    api: ApiClient


@pytest.fixture(autouse=True)
def _stripe(stripe_server):
    return stripe_server


@pytest.fixture(autouse=True, scope="session")
def _face_key(app):
    """A test FACE_KEY, so no development key is written into the checkout's instance/."""
    app.config["FACE_KEY"] = base64.b64encode(b"test-face-key-32-bytes-long-abcd").decode()
    app.extensions.pop("health_face_cipher", None)


@pytest.fixture(autouse=True)
def _unthrottled(app):
    app.config["HEALTH_AUTO_CHARGES_PER_SECOND"] = 0
    yield
    app.config["HEALTH_AUTO_CHARGES_PER_SECOND"] = 5.0


@pytest.fixture
def make_hospital(make_organisation, client) -> Callable[..., Hospital]:
    def make(name: str | None = None) -> Hospital:
        org_id, key = make_organisation("hospital", name or f"Hospital {uuid.uuid4().hex[:6]}")
        return Hospital(org_id, key, client.as_api_key(key))

    return make


@pytest.fixture
def hospital(make_hospital) -> Hospital:
    return make_hospital("Seoul General")


@pytest.fixture
def set_score(app) -> Callable[[Account, int], None]:
    def set_to(account: Account, score: int) -> None:
        with app.app_context():
            delta = score - credit.standing(account.user.id).score
            if delta:
                credit.post_event(account.user.id, delta, "test", "Test agency")

    return set_to


def enrol(account: Account, name: str = "obama", expected: int = 200) -> Any:
    return account.api.request(
        "PUT", f"{H}/face", expected, data=upload(photo(name), consent="true")
    ).get_json()


def save_card(account: Account, payment_method: str = "pm_card_visa") -> Any:
    return account.api.post(
        "/api/v1/payments/methods", {"payment_method": payment_method, **CONSENT}, expected=201
    )


@pytest.fixture
def member(make_account, set_score) -> Callable[..., Account]:
    """A citizen who joined pay-later: score (600), saved card, enrolled face, terms."""

    def make(score: int = 600, card: str = "pm_card_visa", face: str = "obama") -> Account:
        account = make_account("citizen")
        set_score(account, score)
        save_card(account, card)
        enrol(account, face)
        account.api.post(f"{H}/credit-line", {"terms_version": TERMS}, expected=201)
        return account

    return make


def checkin(account: Account) -> str:
    return str(account.api.get(f"{H}/checkin-code")["code"])


def visit(hospital: Hospital, account: Account, expected: int = 201, **fields: Any) -> Any:
    return hospital.api.post(
        f"{H}/visits", {"checkin_code": checkin(account), **fields}, expected=expected
    )


def item(unit_price: int, quantity: int = 1, code: str = "CONSULT") -> dict[str, Any]:
    return {
        "code": code,
        "description": f"{code} x{quantity}",
        "quantity": quantity,
        "unit_price": unit_price,
    }


def post_charges(hospital: Hospital, visit_id: str, *items: dict, expected: int = 201) -> Any:
    return hospital.api.post(
        f"{H}/visits/{visit_id}/charges", {"items": list(items)}, expected=expected
    )


def close(hospital: Hospital, visit_id: str, expected: int = 201) -> Any:
    return hospital.api.post(f"{H}/visits/{visit_id}/close", expected=expected)


def bill(hospital: Hospital, account: Account, *amounts: int) -> Any:
    """A closed visit's bill for the given charges (one line per amount)."""
    opened = visit(hospital, account)
    assert opened["eligible"], opened
    post_charges(hospital, opened["id"], *(item(a) for a in amounts))
    return close(hospital, opened["id"])


def settle(
    account: Account,
    name: str | bytes = "obama2",
    expected: int = 201,
    bill_ids: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    image = photo(name) if isinstance(name, str) else name
    fields = {"bill_ids": ",".join(bill_ids)} if bill_ids else {}
    return account.api.request(
        "POST", f"{H}/settlements", expected, data=upload(image, **fields), headers=headers
    ).get_json()


@pytest.fixture
def commission(make_account) -> Account:
    return make_account("health_commission")


def new_user(app, role: str = "citizen") -> str:
    with app.app_context():
        return auth.create_user(
            email=f"{role}-{uuid.uuid4().hex[:8]}@example.test",
            password="correct-horse-battery",
            name="Someone",
            role=role,
        ).id


@pytest.fixture
def saved_card_needing_3ds(card_needing_3ds, monkeypatch):
    """Make payments pick a card that asks for 3-D Secure as the citizen's saved card."""
    method = card_needing_3ds()
    monkeypatch.setattr(charges, "default_card", lambda _user_id: method)
    return method
