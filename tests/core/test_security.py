"""HTTP hardening: the production guard, the client address behind proxies, /metrics, security
headers, and SQL parameters kept out of logs."""

import logging
import random
import re
import string
import uuid

import pytest
from click.testing import CliRunner
from flask.cli import FlaskGroup
from sqlalchemy import select

from app import create_app
from core import db
from core.auth.models import User
from core.config import DEV_SECRET, LOCALSTRIPE_KEY, LOCALSTRIPE_WEBHOOK
from tests.conftest import PRODUCTION_SETTINGS, build_app

LOGIN = "/api/v1/auth/login"
STRONG = {
    **PRODUCTION_SETTINGS,
    # Keep this process's one limiter in memory: other tests count on it.
    "RATELIMIT_STORAGE_URI": "memory://",
}
DEVELOPMENT_DEFAULTS = {
    "SECRET_KEY": DEV_SECRET,
    "JWT_SECRET_KEY": DEV_SECRET,
    "STRIPE_SECRET_KEY": LOCALSTRIPE_KEY,
    "STRIPE_WEBHOOK_SECRET": LOCALSTRIPE_WEBHOOK,
    "REDIS_URL": "",
}


@pytest.fixture
def production_app(app):
    """Build apps as a server would (no TESTING flag, so APP_ENV decides)."""
    built = []

    def make(**config):
        application = create_app(
            {"DATABASE_URL": app.config["DATABASE_URL"], "DEFAULT_LOCALE": "en", **config}
        )
        built.append(application)
        return application

    yield make
    for application in built:
        application.extensions["db_engine"].dispose()


# --- the production guard fails closed ------------------------------------------------------


@pytest.mark.parametrize("app_env", ["production", "Production", "prod", "staging", " test"])
def test_any_app_env_but_development_or_test_refuses_the_development_defaults(
    production_app, app_env
):
    with pytest.raises(RuntimeError) as refused:
        production_app(APP_ENV=app_env, **DEVELOPMENT_DEFAULTS)
    message = str(refused.value)
    for named in (
        "SECRET_KEY is the public development value",
        "JWT_SECRET_KEY is the public development value",
        "SECRET_KEY and JWT_SECRET_KEY must differ",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "REDIS_URL",
    ):
        assert named in message, (named, message)


def test_an_unset_app_env_outside_the_flask_command_line_is_production(production_app, monkeypatch):
    monkeypatch.delenv("APP_ENV", raising=False)
    with pytest.raises(RuntimeError, match="is a production environment"):
        production_app(**DEVELOPMENT_DEFAULTS)
    built = production_app(**STRONG)
    assert built.config["APP_ENV"] == "production"


def test_an_unset_app_env_under_the_flask_command_line_is_development(production_app, monkeypatch):
    monkeypatch.delenv("APP_ENV", raising=False)
    seen = {}

    def factory():
        built = production_app(**DEVELOPMENT_DEFAULTS)
        seen["env"] = built.config["APP_ENV"]
        return built

    result = CliRunner().invoke(FlaskGroup(create_app=factory), ["db", "current"])
    assert result.exit_code == 0, result.output
    assert seen["env"] == "development"


def test_production_secrets_must_be_long_and_different(production_app):
    weak = {**STRONG, "SECRET_KEY": "short", "JWT_SECRET_KEY": "short"}
    with pytest.raises(RuntimeError) as refused:
        production_app(APP_ENV="production", **weak)
    message = str(refused.value)
    assert "SECRET_KEY must be at least 32 random bytes" in message
    assert "JWT_SECRET_KEY must be at least 32 random bytes" in message
    assert "must differ" in message
    assert "STRIPE" not in message and "REDIS_URL" not in message

    same = {**STRONG, "JWT_SECRET_KEY": STRONG["SECRET_KEY"]}
    with pytest.raises(RuntimeError, match="must differ"):
        production_app(APP_ENV="production", **same)
    production_app(APP_ENV="production", **STRONG)


def test_demo_seed_refuses_outside_development_and_test(production_app):
    production = production_app(APP_ENV="prod", **STRONG)
    result = production.test_cli_runner().invoke(args=["demo", "seed"])
    assert result.exit_code != 0 and "Refusing to seed demo data" in result.output
    with production.app_context():
        assert db.session.scalar(select(User).where(User.email == "admin@demo.city")) is None


# --- the client address behind trusted proxies ----------------------------------------------


def _login_statuses(test_app, forwarded_for: list[str]) -> list[int]:
    """Log in with a fresh unknown email each time (so only the per-address limit counts)."""
    client = test_app.test_client()
    return [
        client.post(
            LOGIN,
            json={"email": f"{uuid.uuid4().hex[:8]}@example.test", "password": "wrong-password"},
            headers={"X-Forwarded-For": address},
            environ_base={"REMOTE_ADDR": "10.0.0.2"},  # the load balancer
        ).status_code
        for address in forwarded_for
    ]


def test_behind_one_trusted_proxy_the_login_limit_keys_on_the_real_client(app, tmp_path):
    behind_proxy = build_app(
        app.config["DATABASE_URL"], tmp_path, TRUSTED_PROXIES=1, LOGIN_RATE_LIMIT="3 per minute"
    )
    citizen_a = ["198.51.100.7"] * 4
    # The proxy appends the address it saw; whatever the client wrote before it is not trusted.
    citizen_b = ["203.0.113.1, 198.51.100.8"]
    assert _login_statuses(behind_proxy, citizen_a + citizen_b) == [401, 401, 401, 429, 401]


def test_without_trusted_proxies_a_forged_forwarded_for_is_ignored(app, tmp_path):
    direct = build_app(app.config["DATABASE_URL"], tmp_path, LOGIN_RATE_LIMIT="3 per minute")
    forged = [f"192.0.2.{n}" for n in range(4)]
    assert _login_statuses(direct, forged) == [401, 401, 401, 429]


# --- /metrics -------------------------------------------------------------------------------


def _label_sets(exposition: str) -> set[str]:
    """Each sample's name and labels, without its value."""
    return {
        line.rsplit(" ", 1)[0]
        for line in exposition.splitlines()
        if line and not line.startswith("#")
    }


def test_a_thousand_invented_methods_do_not_grow_the_metrics(client):
    def invented() -> str:
        return "".join(random.choices(string.ascii_uppercase, k=8))

    def urls():
        return ["/healthz", f"/nowhere/{uuid.uuid4().hex}"]

    for url in urls():  # one of each kind first: these label sets may appear once
        client.client.open(url, method=invented())
    client.request("GET", "/metrics", 200)
    before = client.request("GET", "/metrics", 200).get_data(as_text=True)
    for _ in range(1000):
        client.client.open(random.choice(urls()), method=invented())
    after = client.request("GET", "/metrics", 200).get_data(as_text=True)
    assert _label_sets(after) == _label_sets(before)
    assert len(after) < len(before) + 200  # only counts grew, not the series
    assert 'method="OTHER",route="unmatched",status="405"' in after
    assert 'method="OTHER",route="unmatched",status="404"' in after
    assert "nowhere" not in after


def test_metrics_can_require_a_token(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "metrics-secret-token")
    client.request("GET", "/metrics", 401)
    client.request("GET", "/metrics", 401, headers={"Authorization": "Bearer wrong"})
    ok = client.request(
        "GET", "/metrics", 200, headers={"Authorization": "Bearer metrics-secret-token"}
    )
    assert b"civic_http_requests_total" in ok.data


def test_metrics_can_be_limited_to_networks(app, tmp_path):
    guarded = build_app(
        app.config["DATABASE_URL"], tmp_path, METRICS_ALLOWED_NETWORKS="10.1.0.0/16, ::1"
    )
    test_client = guarded.test_client()
    inside = test_client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    outside = test_client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert (inside.status_code, outside.status_code) == (200, 403)
    with pytest.raises(RuntimeError, match="METRICS_ALLOWED_NETWORKS"):
        build_app(app.config["DATABASE_URL"], tmp_path, METRICS_ALLOWED_NETWORKS="not-a-net")


# --- security headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/api/v1/auth/me", 401),
        ("GET", "/nowhere", 404),
        ("GET", "/docs", 200),
        ("GET", "/docs/assets/swagger-ui-bundle.js", 200),
        ("GET", "/openapi.json", 200),
    ],
)
def test_every_response_carries_the_security_headers(client, method, url, status):
    headers = client.request(method, url, status).headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in headers  # plain HTTP


def test_hsts_is_sent_over_https_including_as_a_trusted_proxy_reports_it(app, tmp_path, client):
    direct = client.request("GET", "/healthz", 200, base_url="https://api.city.test")
    assert direct.headers["Strict-Transport-Security"].startswith("max-age=31536000")

    behind_proxy = build_app(app.config["DATABASE_URL"], tmp_path, TRUSTED_PROXIES=1)
    proxied = behind_proxy.test_client().get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in proxied.headers
    forged = client.request("GET", "/healthz", 200, headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in forged.headers


def test_token_responses_may_not_be_cached(client, citizen):
    body = {"email": "tok@example.test", "password": "seoul-spring-lantern-42", "name": "T"}
    registered = client.request("POST", "/api/v1/auth/register", 201, json=body)
    login = client.request("POST", LOGIN, 200, json={k: body[k] for k in ("email", "password")})
    refreshed = client.request(
        "POST", "/api/v1/auth/refresh", 200, json={"refresh_token": citizen.refresh_token}
    )
    for response in (registered, login, refreshed):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Pragma"] == "no-cache"
    assert "Cache-Control" not in client.request("GET", "/healthz", 200).headers


def test_the_development_server_names_no_version(live_server):
    import urllib.request

    with urllib.request.urlopen(f"{live_server}/healthz", timeout=10) as response:
        server = response.headers["Server"]
    assert server == "civic"
    assert not re.search(r"\d", server)


# --- logs -----------------------------------------------------------------------------------


def test_a_failed_insert_logs_no_sql_parameters(app, tmp_path, citizen, caplog):
    crashing = build_app(app.config["DATABASE_URL"], tmp_path, PROPAGATE_EXCEPTIONS=False)
    marker = "$argon2id$v=19$m=65536,t=3,p=4$secret-hash-that-must-not-be-logged"

    @crashing.post("/test/duplicate-user")
    def duplicate_user():
        db.session.add(
            User(
                id=citizen.user.id,  # the primary key is taken: the insert fails
                email="dup@example.test",
                password_hash=marker,
                name="Dup",
            )
        )
        db.session.commit()

    with caplog.at_level(logging.DEBUG):
        response = crashing.test_client().post("/test/duplicate-user")
    assert response.status_code == 500
    logged = "\n".join(
        record.getMessage() + (logging.Formatter().formatException(record.exc_info))
        if record.exc_info
        else record.getMessage()
        for record in caplog.records
    )
    assert "IntegrityError" in logged  # the failure is logged...
    assert "secret-hash-that-must-not-be-logged" not in logged  # ...without its parameters
    assert "hidden" in logged
