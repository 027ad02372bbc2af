"""Test fixtures: one migrated database per run (SQLite, or PostgreSQL when asked), emptied
after every test; a client whose calls state the status they expect; factories for users and
organisations.

``CIVIC_TEST_BACKEND=postgresql`` with ``TEST_DATABASE_URL`` (a server URL, any database)
runs the suite on a database created for this run and dropped after it.
"""

import base64
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from app import create_app
from core import db, migrations
from core.auth import service as auth
from core.auth.models import User
from core.config import normalise_database_url
from core.db import Base
from core.limiter import limiter
from devtools.localstripe import LocalStripe
from payments import service as payments_service

BACKEND = os.environ.get("CIVIC_TEST_BACKEND", "sqlite")
# Settings a production environment must have (core.config.production_problems): real-looking.
PRODUCTION_SETTINGS = {
    "SECRET_KEY": "s" * 40,
    "JWT_SECRET_KEY": "j" * 40,
    "STRIPE_SECRET_KEY": "sk_live_abcdefghijklmnop",
    "STRIPE_WEBHOOK_SECRET": "whsec_real_endpoint_secret",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    "CIVIC_SIGNING_KEY": "/run/secrets/civic-signing-key.pem",
    "FACE_KEY": base64.b64encode(b"k" * 32).decode(),
}
PASSWORD = "correct-horse-battery"


def pytest_report_header() -> str:
    return f"civic test backend: {BACKEND}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if BACKEND == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (CIVIC_TEST_BACKEND=postgresql)")
    for item in items:
        if "postgresql_only" in item.keywords:
            item.add_marker(skip)


class DatabaseFactory:
    """Creates empty databases for this run and drops them at the end."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._created: list[str] = []
        server = os.environ.get("TEST_DATABASE_URL", "") if BACKEND == "postgresql" else ""
        if BACKEND == "postgresql" and not server:
            raise pytest.UsageError("CIVIC_TEST_BACKEND=postgresql needs TEST_DATABASE_URL")
        # The SQLite pass stays on SQLite even where TEST_DATABASE_URL is set (CI sets it for
        # the PostgreSQL pass): it once ran on PostgreSQL there without saying so.
        self._server = make_url(normalise_database_url(server)) if server else None

    def create(self) -> str:
        name = f"civic_test_{uuid.uuid4().hex[:10]}"
        if self._server is None:
            return f"sqlite:///{self._tmp / (name + '.db')}"
        self._admin(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self._server.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        for name in self._created:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        assert self._server is not None
        admin = create_engine(self._server.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(statement))
        admin.dispose()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("db"))
    yield factory
    factory.drop_all()


def build_app(database_url: str, tmp: Path, **extra: Any) -> Flask:
    """An app for tests on ``database_url`` (not migrated)."""
    config = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SCHEDULER_LOCK_FILE": str(tmp / f"scheduler-{uuid.uuid4().hex[:6]}.lock"),
        "REDIS_URL": "",
        "DEFAULT_LOCALE": "en",
    }
    config.update(extra)
    return create_app(config)


@pytest.fixture(scope="session")
def app(databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The app on this run's database, built by the migrations."""
    application = build_app(databases.create(), tmp_path_factory.mktemp("app"))
    with application.app_context():
        migrations.upgrade()
    yield application
    application.extensions["db_engine"].dispose()


@pytest.fixture(autouse=True)
def _empty_tables_after_test(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "app" not in request.fixturenames:
        return
    application: Flask = request.getfixturevalue("app")
    with application.app_context():
        db.session.rollback()
        with db.engine().begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
        db.session.remove()
        limiter.reset()


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served over real HTTP on a free loopback port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def app_context(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


class ApiClient:
    """Calls the API and checks the status in one line (the GOV.UK Notify habit)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.headers: dict[str, str] = {}

    def as_token(self, token: str) -> "ApiClient":
        other = ApiClient(self.client)
        other.headers = {"Authorization": f"Bearer {token}"}
        return other

    def as_api_key(self, key: str) -> "ApiClient":
        other = ApiClient(self.client)
        other.headers = {"X-API-Key": key}
        return other

    def request(
        self, method: str, url: str, expected: int, headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        response = self.client.open(
            url, method=method, headers={**self.headers, **(headers or {})}, **kw
        )
        assert response.status_code == expected, (
            f"{method} {url}: expected {expected}, got {response.status_code}: "
            f"{response.get_data(as_text=True)[:500]}"
        )
        return response

    def get(self, url: str, expected: int = 200, **kw: Any) -> Any:
        return self.request("GET", url, expected, **kw).get_json()

    def post(self, url: str, json: Any = None, expected: int = 200, **kw: Any) -> Any:
        return self.request("POST", url, expected, json=json, **kw).get_json()

    def delete(self, url: str, expected: int = 200, **kw: Any) -> Any:
        return self.request("DELETE", url, expected, **kw).get_json()


@pytest.fixture
def client(app: Flask) -> ApiClient:
    return ApiClient(app.test_client())


@dataclass
class Account:
    user: User
    access_token: str
    refresh_token: str
    api: ApiClient


@pytest.fixture
def make_account(app: Flask, client: ApiClient) -> Callable[..., Account]:
    """Create a user with a role and log them in."""

    def make(
        role: str = "citizen", department: str | None = None, email: str | None = None
    ) -> Account:
        email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.test"
        with app.app_context():
            user = auth.create_user(
                email=email,
                password=PASSWORD,
                name=f"Test {role}",
                role=role,
                department_code=department or ("CIVIL-REG" if role == "official" else None),
            )
        tokens = client.post("/api/v1/auth/login", {"email": email, "password": PASSWORD})
        return Account(
            user,
            tokens["access_token"],
            tokens["refresh_token"],
            client.as_token(tokens["access_token"]),
        )

    return make


@pytest.fixture
def citizen(make_account: Callable[..., Account]) -> Account:
    return make_account("citizen")


@pytest.fixture
def admin(make_account: Callable[..., Account]) -> Account:
    return make_account("admin")


@pytest.fixture
def make_organisation(app: Flask, client: ApiClient) -> Callable[..., tuple[str, str]]:
    """Create an organisation; returns (organisation id, API key)."""

    def make(kind: str = "hospital", name: str | None = None) -> tuple[str, str]:
        with app.app_context():
            organisation = auth.create_organisation(name or f"Org {uuid.uuid4().hex[:8]}", kind)
            issued = auth.issue_api_key(organisation.id, "test")
            return organisation.id, issued.secret

    return make


def count_rows(app: Flask) -> dict[str, int]:
    """Rows per table: a rejected request must leave these unchanged."""
    with app.app_context(), db.engine().connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in Base.metadata.sorted_tables
        }


WEBHOOK_SECRET = "whsec_test_secret"
THREE_D_SECURE_CARD = "4000002760003184"  # localstripe asks this card for authentication


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    """One real localstripe process on loopback for the run."""
    with LocalStripe() as server:
        yield server


@pytest.fixture
def stripe_server(app: Flask, localstripe: LocalStripe) -> Iterator[LocalStripe]:
    """Point the app at localstripe; empty its store after the test."""
    app.config.update(
        STRIPE_SECRET_KEY="sk_test_local",
        STRIPE_API_BASE=localstripe.url,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    app.extensions.pop("stripe_gateway", None)
    yield localstripe
    localstripe.clear()
    app.extensions.pop("stripe_gateway", None)


@pytest.fixture
def card_needing_3ds(app: Flask, stripe_server: LocalStripe) -> Callable[[], str]:
    """``card_needing_3ds()``: a new PaymentMethod that asks for 3-D Secure when charged
    on-session (the payment is ``requires_action``)."""

    def make() -> str:
        with app.app_context():
            client = payments_service.gateway()._client
        params: Any = {
            "type": "card",
            "card": {
                "number": THREE_D_SECURE_CARD,
                "exp_month": 12,
                "exp_year": 2030,
                "cvc": "123",
            },
        }
        return str(client.v1.payment_methods.create(params=params).id)

    return make


# The world of every kind of caller and their objects (tests/world.py), for every test module.
from tests.world import world  # noqa: E402, F401
