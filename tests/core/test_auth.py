"""Registering, logging in, refreshing, logging out and asking who I am."""

from datetime import timedelta

import jwt
import pytest
import time_machine
from sqlalchemy import select

from core import db
from core.auth.models import AuthSession, User
from core.clock import utcnow
from tests.conftest import PASSWORD, count_rows

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"


def register(client, email="chloe@example.test", **extra):
    body = {"email": email, "password": PASSWORD, "name": "Chloe", **extra}
    return client.post(REGISTER, body, expected=201)


def test_a_citizen_registers_logs_in_and_sees_themselves(client):
    created = register(client, phone="+82 10-1234-5678")
    assert created["role"] == "citizen" and "password" not in created
    assert created["created_at"].endswith("+00:00")

    tokens = client.post(LOGIN, {"email": "Chloe@Example.test", "password": PASSWORD})
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900

    me = client.as_token(tokens["access_token"]).get(ME)
    assert me == {
        "kind": "user",
        "id": created["id"],
        "name": "Chloe",
        "role": "citizen",
        "email": "chloe@example.test",
        "department": None,
        "locale": None,
    }


def test_passwords_are_stored_as_argon2_hashes(app, client):
    register(client)
    with app.app_context():
        stored = db.session.scalar(select(User.password_hash))
    assert stored is not None and stored.startswith("$argon2") and PASSWORD not in stored


def test_registering_an_email_twice_is_a_conflict(client):
    register(client)
    error = client.post(
        REGISTER, {"email": "CHLOE@example.test", "password": PASSWORD, "name": "C"}, expected=409
    )
    assert error["errors"] == {"json": {"email": ["An account with this email already exists."]}}


def test_a_wrong_password_and_an_unknown_email_get_the_same_401(client):
    register(client)
    wrong = client.post(
        LOGIN, {"email": "chloe@example.test", "password": "nope-nope-nope"}, expected=401
    )
    unknown = client.post(
        LOGIN, {"email": "who@example.test", "password": "nope-nope-nope"}, expected=401
    )
    assert wrong["message"] == unknown["message"] == "Email or password is wrong."


def test_refresh_rotates_the_token_and_the_new_access_token_works(citizen, client):
    rotated = client.post(REFRESH, {"refresh_token": citizen.refresh_token})
    assert rotated["refresh_token"] != citizen.refresh_token
    client.as_token(rotated["access_token"]).get(ME)
    client.post(REFRESH, {"refresh_token": rotated["refresh_token"]})


def test_a_reused_refresh_token_is_refused_and_revokes_the_whole_family(app, citizen, client):
    rotated = client.post(REFRESH, {"refresh_token": citizen.refresh_token})
    error = client.post(REFRESH, {"refresh_token": citizen.refresh_token}, expected=401)
    assert "revoked" in error["message"]
    # The thief's reuse also kills the legitimate holder's newer tokens.
    client.post(REFRESH, {"refresh_token": rotated["refresh_token"]}, expected=401)
    client.as_token(rotated["access_token"]).get(ME, expected=401)
    with app.app_context():
        reason = db.session.scalar(select(AuthSession.revoked_reason))
    assert reason == "refresh_token_reuse"


def test_a_forged_or_garbled_refresh_token_is_401(citizen, client):
    token_id = citizen.refresh_token.split(".")[0]
    client.post(REFRESH, {"refresh_token": f"{token_id}.forged"}, expected=401)
    client.post(REFRESH, {"refresh_token": "no-dot-at-all"}, expected=401)


def test_logout_ends_the_session_for_access_and_refresh_tokens(citizen, client):
    citizen.api.request("POST", "/api/v1/auth/logout", 204)
    citizen.api.get(ME, expected=401)
    client.post(REFRESH, {"refresh_token": citizen.refresh_token}, expected=401)


def test_an_access_token_expires_after_fifteen_minutes(citizen):
    with time_machine.travel(utcnow() + timedelta(minutes=14)):
        citizen.api.get(ME)
    with time_machine.travel(utcnow() + timedelta(minutes=16)):
        error = citizen.api.get(ME, expected=401)
    assert error["message"] == "Access token has expired."


def test_a_token_signed_with_another_key_is_401(app, citizen, client):
    claims = jwt.decode(citizen.access_token, options={"verify_signature": False})
    forged = jwt.encode(
        {**claims, "role": "admin"}, "not-the-key-but-long-enough-to-be-quiet", algorithm="HS256"
    )
    client.as_token(forged).get(ME, expected=401)
    client.as_token("not.a.jwt").get(ME, expected=401)
    none_alg = jwt.encode({**claims, "role": "admin"}, key="", algorithm="none")
    client.as_token(none_alg).get(ME, expected=401)


@pytest.mark.filterwarnings("ignore:The HMAC key is")  # HS512 with our key: refused anyway
def test_only_an_hs256_token_of_ours_signed_with_our_key_is_accepted(app, citizen, client):
    key = app.config["JWT_SECRET_KEY"]
    claims = jwt.decode(citizen.access_token, options={"verify_signature": False})
    client.as_token(jwt.encode(claims, key, algorithm="HS256")).get(ME)  # re-signed: fine
    header, payload, signature = citizen.access_token.split(".")
    refused = [
        jwt.encode(claims, key, algorithm="HS512"),  # our key, another algorithm
        jwt.encode(claims, key, algorithm="HS256", headers={"crit": ["exp"]}),
        jwt.encode(claims, key, algorithm="HS256", headers={"kid": "other"}),
        jwt.encode({**claims, "iat": claims["iat"] + 3600}, key, algorithm="HS256"),  # future
        jwt.encode({**claims, "nbf": claims["iat"] + 3600}, key, algorithm="HS256"),
        jwt.encode({**claims, "exp": str(claims["exp"])}, key, algorithm="HS256"),
        jwt.encode({k: v for k, v in claims.items() if k != "sid"}, key, algorithm="HS256"),
        jwt.encode({**claims, "typ": "refresh"}, key, algorithm="HS256"),
        f"{header}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}",
        f"{header}.{payload}.{signature}=",  # padding
        f"{header}.{payload}.{signature[:-1]}",  # a signature cut short
        f"{header}.{payload}.{signature}.{signature}",
        citizen.access_token.replace(".", "%2E", 1),
    ]
    for token in refused:
        error = client.as_token(token).get(ME, expected=401)
        assert error["message"] == "Access token is not valid.", token


def test_a_forged_token_with_a_deeply_nested_header_is_401_not_500(citizen, client):
    import base64

    def segment(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    _, payload, signature = citizen.access_token.split(".")
    forged = f"{segment(b'[' * 3000 + b']' * 3000)}.{payload}.{signature}"
    error = client.as_token(forged).get(ME, expected=401)
    assert error["message"] == "Access token is not valid."


def test_no_credentials_is_401_with_a_challenge(client):
    response = client.request("GET", ME, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_citizen_calling_an_admin_route_is_403(citizen):
    error = citizen.api.get("/api/v1/admin/audit", expected=403)
    assert error == {
        "code": 403,
        "status": "Forbidden",
        "message": "Your role may not call this endpoint.",
    }


def test_bad_registrations_are_rejected_with_the_field_named_and_write_nothing(app, client):
    before = count_rows(app)
    cases = [
        ({"email": "not-an-email", "password": PASSWORD, "name": "X"}, "email"),
        ({"email": "x@example.test", "password": "short", "name": "X"}, "password"),
        ({"email": "x@example.test", "password": PASSWORD}, "name"),
        ({"email": "x@example.test", "password": PASSWORD, "name": 7}, "name"),
        ({"email": "x@example.test", "password": PASSWORD, "name": "X", "role": "admin"}, "role"),
        (
            {"email": "x@example.test", "password": PASSWORD, "name": "X", "phone": "call me"},
            "phone",
        ),
    ]
    for body, field in cases:
        error = client.post(REGISTER, body, expected=422)
        assert field in error["errors"]["json"], (body, error)
    assert count_rows(app) == before


def test_malformed_json_is_400_and_writes_nothing(app, client):
    before = count_rows(app)
    response = client.request(
        "POST", REGISTER, 400, data="{not json", content_type="application/json"
    )
    assert response.get_json()["code"] == 400
    assert count_rows(app) == before


def test_a_ten_megabyte_body_is_413_and_writes_nothing(app, client):
    before = count_rows(app)
    huge = '{"email": "x@example.test", "name": "' + "x" * (10 * 1024 * 1024) + '"}'
    response = client.request("POST", REGISTER, 413, data=huge, content_type="application/json")
    assert response.get_json()["code"] == 413
    assert count_rows(app) == before


def test_login_is_rate_limited_with_retry_after(app, client):
    register(client)
    limit = int(app.config["LOGIN_RATE_LIMIT"].split()[0])
    for _ in range(limit):
        client.post(
            LOGIN, {"email": "chloe@example.test", "password": "wrong-password"}, expected=401
        )
    response = client.request(
        "POST", LOGIN, 429, json={"email": "chloe@example.test", "password": PASSWORD}
    )
    assert int(response.headers["Retry-After"]) > 0
    assert response.get_json()["code"] == 429


def test_an_official_must_have_a_department(app):
    import pytest

    from core.auth import service
    from core.errors import InvalidInput

    with app.app_context(), pytest.raises(InvalidInput, match="department"):
        service.create_user(email="o@example.test", password=PASSWORD, name="O", role="official")


def test_with_redis_url_the_login_limit_is_kept_in_redis(app, tmp_path):
    import socket
    import uuid

    import pytest
    import redis

    from core.limiter import limiter
    from tests.conftest import build_app

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"civic-test-{uuid.uuid4().hex[:8]}"
    url = "redis://127.0.0.1:6379/15"
    worker = build_app(
        app.config["DATABASE_URL"],
        tmp_path,
        REDIS_URL=url,
        RATELIMIT_KEY_PREFIX=prefix,
        LOGIN_RATE_LIMIT="2 per minute",
    )
    try:
        assert type(limiter.storage).__name__ == "RedisStorage"
        body = {"email": "nobody@example.test", "password": "wrong-password"}
        statuses = [worker.test_client().post(LOGIN, json=body).status_code for _ in range(3)]
        assert statuses == [401, 401, 429]
        assert redis.Redis.from_url(url).keys(f"*{prefix}*")
    finally:
        limiter.reset()
        build_app(app.config["DATABASE_URL"], tmp_path)  # the process's limiter back to memory


def test_an_access_token_whose_session_belongs_to_another_user_is_refused(app, citizen, admin):
    # Even with the signing secret, a citizen's session id with an admin's subject is no admin.
    claims = jwt.decode(citizen.access_token, options={"verify_signature": False})
    forged = jwt.encode(
        {**claims, "sub": admin.user.id, "role": "admin"},
        app.config["JWT_SECRET_KEY"],
        algorithm="HS256",
    )
    error = citizen.api.as_token(forged).get(ME, expected=401)
    assert error["message"] == "This login session has ended; log in again."
    citizen.api.as_token(forged).get("/api/v1/admin/audit", expected=401)
    citizen.api.get(ME)  # the citizen's own token still works


def test_weak_registration_passwords_are_refused_naming_the_password(app, client):
    before = count_rows(app)
    email = "minji.park@example.test"
    for password in (
        "minji.park@example.test",  # the email
        "MINJI.PARK",  # its local part, in any case
        "aaaaaaaaaaaa",  # one character repeated
        "password1234",  # common
        "qwertyuiop12",  # a keyboard walk
        "Minji Park 2026",  # the user's own name and a year
    ):
        body = {"email": email, "password": password, "name": "Minji Park"}
        error = client.post(REGISTER, body, expected=422)
        assert list(error["errors"]["json"]) == ["password"], (password, error)
    assert count_rows(app) == before
    client.post(
        REGISTER, {"email": email, "password": PASSWORD, "name": "Minji Park"}, expected=201
    )


def test_registration_is_rate_limited_per_address(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "REGISTER_RATE_LIMIT", "2 per hour")
    register(client, "one@example.test")
    register(client, "two@example.test")
    response = client.request(
        "POST",
        REGISTER,
        429,
        json={"email": "three@example.test", "password": PASSWORD, "name": "Three"},
    )
    assert int(response.headers["Retry-After"]) > 0
    other_address = client.client.post(
        REGISTER,
        json={"email": "four@example.test", "password": PASSWORD, "name": "Four"},
        environ_base={"REMOTE_ADDR": "192.0.2.44"},
    )
    assert other_address.status_code == 201
