"""Fixtures of the civic tests: officials bound to departments, JSON calls with any method."""

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from core.auth import service as auth
from tests.conftest import Account


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accounts are made by the dozen here: argon2 at its cheapest keeps the suite quick
    (core's tests check hashing at its real cost)."""
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024))


@pytest.fixture
def official(make_account: Callable[..., Account]) -> Account:
    return make_account("official", department="CIVIL-REG")


def send(account: Account, method: str, url: str, json: Any, expected: int, **kw: Any) -> Any:
    """A JSON call with any method (the client has helpers for GET, POST and DELETE only)."""
    return account.api.request(method, url, expected, json=json, **kw).get_json()


DEPARTMENTS = "/api/v1/civic/departments"
SERVICES = "/api/v1/civic/services"


def names(ko: str, en: str, zh: str) -> dict[str, str]:
    return {"ko": ko, "en": en, "zh": zh}


def passport_service(**overrides: Any) -> dict[str, Any]:
    """A service with a fee, a form of every kind of field, and two documents."""
    content = {
        "code": "PASSPORT-REISSUE",
        "category": "passports",
        "department": "CIVIL-REG",
        "name": names("여권재발급", "Passport reissue", "护照补发"),
        "description": names(
            "분실하거나 훼손된 여권을 다시 발급합니다.",
            "Reissue a lost or damaged passport.",
            "补发遗失或损坏的护照。",
        ),
        "keywords": ["passport", "여권", "护照"],
        "fee": {"amount": 53000, "currency": "KRW"},
        "processing_days": 5,
        "documents": [
            {
                "code": "photo",
                "label": names("여권 사진", "Passport photo", "护照照片"),
                "required": True,
                "types": ["image/jpeg", "image/png"],
                "max_bytes": 2048,
            },
            {
                "code": "police_report",
                "label": names("분실 신고서", "Police report", "报案证明"),
                "required": False,
                "types": ["application/pdf"],
                "max_bytes": 4096,
            },
        ],
        "fields": [
            {
                "code": "full_name",
                "label": names("성명", "Full name", "姓名"),
                "datatype": "string",
                "required": True,
                "max_length": 50,
            },
            {
                "code": "reason",
                "label": names("사유", "Reason", "原因"),
                "datatype": "singlevaluelist",
                "required": True,
                "values": [
                    {"key": "lost", "name": names("분실", "Lost", "遗失")},
                    {"key": "damaged", "name": names("훼손", "Damaged", "损坏")},
                ],
            },
            {
                "code": "pages",
                "label": names("면수", "Pages", "页数"),
                "datatype": "number",
                "required": False,
                "min": 24,
                "max": 58,
            },
            {
                "code": "birth_date",
                "label": names("생년월일", "Birth date", "出生日期"),
                "datatype": "date",
                "required": True,
            },
            {
                "code": "email",
                "label": names("이메일", "Email", "电子邮件"),
                "datatype": "email",
                "required": False,
            },
            {
                "code": "phone",
                "label": names("전화", "Phone", "电话"),
                "datatype": "phone",
                "required": False,
            },
            {
                "code": "urgent",
                "label": names("긴급", "Urgent", "加急"),
                "datatype": "boolean",
                "required": False,
            },
            {
                "code": "lost_at",
                "label": names("분실 일시", "Lost at", "遗失时间"),
                "datatype": "datetime",
                "required": False,
            },
            {
                "code": "notes",
                "label": names("비고", "Notes", "备注"),
                "datatype": "text",
                "required": False,
            },
            {
                "code": "extras",
                "label": names("추가", "Extras", "附加"),
                "datatype": "multivaluelist",
                "required": False,
                "values": [
                    {"key": "courier", "name": names("택배", "Courier", "快递")},
                    {"key": "sms", "name": names("문자", "SMS", "短信")},
                ],
            },
            {
                "code": "passport_no",
                "label": names("여권번호", "Passport no.", "护照号"),
                "datatype": "string",
                "required": False,
                "pattern": "^[A-Z][0-9]{8}$",
            },
        ],
        "open311": False,
    }
    content.update(overrides)
    return content


def pothole_service(**overrides: Any) -> dict[str, Any]:
    """An Open311 service: no fee, no required documents."""
    content = {
        "code": "POTHOLE",
        "category": "roads",
        "department": "ROADS",
        "name": names("도로 파손 신고", "Pothole report", "道路坑洞报告"),
        "description": names("도로의 파손을 신고합니다.", "Report a pothole.", "报告道路坑洞。"),
        "keywords": ["pothole", "road", "도로", "坑洞"],
        "fee": None,
        "processing_days": 3,
        "documents": [],
        "fields": [
            {
                "code": "size",
                "label": names("크기", "Size", "大小"),
                "datatype": "singlevaluelist",
                "required": True,
                "values": [
                    {"key": "small", "name": names("작음", "Small", "小")},
                    {"key": "large", "name": names("큼", "Large", "大")},
                ],
            },
            {
                "code": "depth_cm",
                "label": names("깊이", "Depth (cm)", "深度"),
                "datatype": "number",
                "required": False,
                "min": 0,
                "max": 100,
            },
        ],
        "open311": True,
    }
    content.update(overrides)
    return content


@pytest.fixture
def departments(admin: Account) -> list[str]:
    for code, name in (
        ("CIVIL-REG", names("민원여권과", "Civil Registration", "民事登记处")),
        ("ROADS", names("도로과", "Roads", "道路科")),
    ):
        admin.api.post(DEPARTMENTS, {"code": code, "name": name}, expected=201)
    return ["CIVIL-REG", "ROADS"]


@pytest.fixture
def publish(admin: Account, departments: list[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Create and publish a service; returns its definition."""

    def make(content: dict[str, Any]) -> dict[str, Any]:
        admin.api.post(SERVICES, content, expected=201)
        return admin.api.post(f"{SERVICES}/{content['code']}/publish", expected=200)

    return make


# --- applications --------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(200))
PDF = b"%PDF-1.7\n" + bytes(range(200))
APPLICATIONS = "/api/v1/civic/applications"
QUEUE = "/api/v1/civic/queue"
GOOD_ANSWERS = {"full_name": "Kim Minji", "reason": "lost", "birth_date": "1990-04-01"}
CONSENT = {"consent_off_session": True, "consent_text_version": "2026-11"}


@pytest.fixture(scope="session")
def signing_pem() -> str:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode()


@pytest.fixture(autouse=True)
def _civic_files(app: Flask, tmp_path: Path, signing_pem: str) -> Iterator[Path]:
    """Uploads go to this test's folder; certificates are signed with the session's key."""
    saved = {key: app.config[key] for key in ("CIVIC_UPLOAD_DIR", "CIVIC_SIGNING_KEY")}
    uploads = tmp_path / "uploads"
    app.config.update(CIVIC_UPLOAD_DIR=str(uploads), CIVIC_SIGNING_KEY=signing_pem)
    yield uploads
    app.config.update(saved)


def stored_files(app: Flask) -> list[Path]:
    folder = Path(app.config["CIVIC_UPLOAD_DIR"])
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def submit(
    account: Account,
    service: str = "PASSPORT-REISSUE",
    answers: Any = None,
    files: dict[str, tuple[bytes, str]] | None = None,
    expected: int = 201,
    headers: dict[str, str] | None = None,
    **form: str,
) -> Any:
    """Apply over multipart, as the app does: answers as JSON, one file part per document."""
    answers = GOOD_ANSWERS if answers is None else answers
    data: dict[str, Any] = {"service": service, **form}
    data["answers"] = answers if isinstance(answers, str) else json.dumps(answers)
    for code, (content, name) in (
        files if files is not None else {"photo": (PNG, "me.png")}
    ).items():
        data[code] = (io.BytesIO(content), name)
    return account.api.request(
        "POST",
        APPLICATIONS,
        expected,
        data=data,
        content_type="multipart/form-data",
        headers=headers,
    )


def answer(
    account: Account,
    application_id: str,
    answers: dict[str, Any] | None = None,
    files: dict[str, tuple[bytes, str]] | None = None,
    expected: int = 200,
    **form: str,
) -> Any:
    data: dict[str, Any] = dict(form)
    if answers is not None:
        data["answers"] = json.dumps(answers)
    for code, (content, name) in (files or {}).items():
        data[code] = (io.BytesIO(content), name)
    return account.api.request(
        "POST",
        f"{APPLICATIONS}/{application_id}/answers",
        expected,
        data=data,
        content_type="multipart/form-data",
    ).get_json()


def save_card(account: Account, payment_method: str = "pm_card_visa") -> None:
    body = {"payment_method": payment_method, **CONSENT}
    account.api.post("/api/v1/payments/methods", body, expected=201)


def inbox_titles(account: Account) -> list[str]:
    return [n["title"] for n in account.api.get("/api/v1/me/notifications?page_size=100")]


@pytest.fixture
def roads_official(make_account: Callable[..., Account]) -> Account:
    return make_account("official", department="ROADS")
