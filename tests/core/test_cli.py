"""The command line an operator uses: users, organisations, demo data, migrations."""

import re

from sqlalchemy import func, select

from core import db
from core.audit.models import AuditEntry
from core.auth.models import User
from tests.conftest import PASSWORD


def grab(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.M)
    assert match, f"{pattern!r} not in {text!r}"
    return match.group(1)


def test_users_create_reads_the_password_from_stdin_and_the_user_can_log_in(app, client):
    result = app.test_cli_runner().invoke(
        args=["users", "create", "clerk@city.test", "--role", "official", "--department", "TAX"],
        input="a-long-password\n",
    )
    assert result.exit_code == 0, result.output
    assert "official" in result.output
    tokens = client.post(
        "/api/v1/auth/login", {"email": "clerk@city.test", "password": "a-long-password"}
    )
    me = client.as_token(tokens["access_token"]).get("/api/v1/auth/me")
    assert (me["role"], me["department"]) == ("official", "TAX")


def test_users_create_refuses_an_official_without_a_department(app):
    result = app.test_cli_runner().invoke(
        args=["users", "create", "o@city.test", "--role", "official"], input="a-long-password\n"
    )
    assert result.exit_code != 0 and "department" in result.output


def test_users_create_refuses_a_short_password(app):
    result = app.test_cli_runner().invoke(args=["users", "create", "s@city.test"], input="short\n")
    assert result.exit_code != 0 and "10 characters" in result.output


def test_orgs_create_prints_a_key_that_authenticates(app, client):
    result = app.test_cli_runner().invoke(
        args=["orgs", "create", "Gangnam Parking", "--kind", "parking_operator"]
    )
    assert result.exit_code == 0, result.output
    key = grab(r"^api_key: (\S+)$", result.output)
    me = client.as_api_key(key).get("/api/v1/auth/me")
    assert (me["name"], me["organisation_kind"]) == ("Gangnam Parking", "parking_operator")


def test_demo_seed_is_idempotent_and_prints_working_logins(app, client):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "seed"])
    with app.app_context():
        users = db.session.scalar(select(func.count()).select_from(User)) or 0
    second = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    with app.app_context():  # one per role from core, and modules' own (civic's officials)
        assert db.session.scalar(select(func.count()).select_from(User)) == users >= 4
    password = grab(r"password for every demo user: (\S+)", second.output)
    client.post("/api/v1/auth/login", {"email": "admin@demo.city", "password": password})
    key = grab(r"hospital .*X-API-Key (\S+)", second.output)
    client.as_api_key(key).get("/api/v1/auth/me")
    old_key = grab(r"hospital .*X-API-Key (\S+)", first.output)
    client.as_api_key(old_key).get("/api/v1/auth/me", expected=401)


def test_users_deactivate_ends_every_session_of_the_user_at_once(app, client, make_account):
    user = make_account("official")
    second_login = client.post(
        "/api/v1/auth/login", {"email": user.user.email, "password": PASSWORD}
    )
    user.api.get("/api/v1/auth/me")

    result = app.test_cli_runner().invoke(args=["users", "deactivate", user.user.email])
    assert result.exit_code == 0, result.output
    assert "2 login session(s) revoked" in result.output

    user.api.get("/api/v1/auth/me", expected=401)
    client.as_token(second_login["access_token"]).get("/api/v1/auth/me", expected=401)
    for refresh_token in (user.refresh_token, second_login["refresh_token"]):
        client.post("/api/v1/auth/refresh", {"refresh_token": refresh_token}, expected=401)
    client.post(
        "/api/v1/auth/login", {"email": user.user.email, "password": PASSWORD}, expected=401
    )
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.deactivated"))
    assert entry is not None and entry.actor == "cli" and entry.object_id == user.user.id
    assert entry.after == {"active": False, "sessions_revoked": 2}


def test_users_deactivate_an_unknown_email_fails(app):
    result = app.test_cli_runner().invoke(args=["users", "deactivate", "nobody@example.test"])
    assert result.exit_code != 0 and "No such user" in result.output


def test_users_create_refuses_a_guessable_password(app):
    result = app.test_cli_runner().invoke(
        args=["users", "create", "weak@city.test"], input="password1234\n"
    )
    assert result.exit_code != 0 and "too easy to guess" in result.output
