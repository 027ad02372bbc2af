"""What core charges every request: authentication in one indexed query, no database work for a
request that needs none, and no cache that would delay a revocation."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from sqlalchemy import event

from core import db
from tests.conftest import PASSWORD

ME = "/api/v1/auth/me"
ORGS = "/api/v1/admin/organisations"


@dataclass
class DatabaseWork:
    statements: list[str] = field(default_factory=list)
    checkouts: int = 0


@contextmanager
def database_work(app) -> Iterator[DatabaseWork]:
    """Record the SQL statements (BEGIN aside) and the pool checkouts of the app's engine."""
    work = DatabaseWork()
    with app.app_context():
        engine = db.engine()

    def on_execute(_conn, _cursor, statement, *_args):
        if not statement.lstrip().upper().startswith("BEGIN"):
            work.statements.append(statement)

    def on_checkout(*_args):
        work.checkouts += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine.pool, "checkout", on_checkout)
    try:
        yield work
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine.pool, "checkout", on_checkout)


def test_a_bearer_request_is_authenticated_with_one_query(app, citizen):
    citizen.api.get(ME)  # warm: nothing below is a first-use cost
    with database_work(app) as work:
        me = citizen.api.get(ME)
    assert me["email"] == citizen.user.email
    assert len(work.statements) == 1, work.statements
    assert "JOIN" in work.statements[0] and work.checkouts == 1


def test_an_api_key_request_is_authenticated_with_one_query(app, client, make_organisation):
    _, key = make_organisation("hospital")
    with database_work(app) as work:
        me = client.as_api_key(key).get(ME)
    assert me["organisation_kind"] == "hospital"
    assert len(work.statements) == 1, work.statements
    assert "JOIN" in work.statements[0]


def test_a_malformed_api_key_costs_no_query(app, client):
    with database_work(app) as work:
        client.as_api_key("ck_not-hex-at-all_secret").get(ME, expected=401)
    assert work.statements == [] and work.checkouts == 0


@pytest.mark.parametrize(
    ("url", "status"), [("/healthz", 200), (ME, 401), ("/nowhere", 404), ("/openapi.json", 200)]
)
def test_a_request_that_needs_no_database_does_not_touch_it(app, client, url, status):
    with database_work(app) as work:
        client.request("GET", url, status)
    assert work.statements == [] and work.checkouts == 0


def test_an_authenticated_view_does_not_authenticate_twice(app, admin):
    with database_work(app) as work:
        admin.api.get(ORGS)
    auth_queries = [s for s in work.statements if "auth_sessions" in s]
    assert len(auth_queries) == 1, work.statements


# Each revocation must count on the very next request: the principal lives in ``g`` (one
# request) and nowhere else.


def test_logout_counts_on_the_next_request(citizen):
    citizen.api.get(ME)
    citizen.api.request("POST", "/api/v1/auth/logout", 204)
    citizen.api.get(ME, expected=401)


def test_refresh_token_reuse_counts_on_the_next_request(citizen, client):
    rotated = client.post("/api/v1/auth/refresh", {"refresh_token": citizen.refresh_token})
    fresh = client.as_token(rotated["access_token"])
    fresh.get(ME)
    client.post("/api/v1/auth/refresh", {"refresh_token": citizen.refresh_token}, expected=401)
    fresh.get(ME, expected=401)
    citizen.api.get(ME, expected=401)


def test_deactivation_counts_on_the_next_request(app, citizen, client):
    citizen.api.get(ME)
    result = app.test_cli_runner().invoke(args=["users", "deactivate", citizen.user.email])
    assert result.exit_code == 0, result.output
    citizen.api.get(ME, expected=401)
    client.post(
        "/api/v1/auth/login", {"email": citizen.user.email, "password": PASSWORD}, expected=401
    )


def test_key_revocation_counts_on_the_next_request(admin, client, make_organisation):
    organisation_id, key = make_organisation("parking_operator")
    caller = client.as_api_key(key)
    caller.get(ME)
    key_id = admin.api.get(f"{ORGS}/{organisation_id}/api-keys")[0]["id"]
    admin.api.delete(f"{ORGS}/{organisation_id}/api-keys/{key_id}")
    caller.get(ME, expected=401)


@pytest.mark.postgresql_only  # an SQLite file needs no ping
def test_a_connection_reused_at_once_is_not_pinged_first(app, citizen, monkeypatch):
    pings = []
    with app.app_context():
        dialect = db.engine().dialect

    def counting_ping(_connection):
        pings.append(1)
        return True

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    citizen.api.get(ME)
    citizen.api.get(ME)
    assert pings == []
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if it had sat idle
    citizen.api.get(ME)
    assert pings == [1]


@pytest.mark.postgresql_only
def test_a_pooled_connection_the_database_dropped_while_idle_is_replaced(app, citizen, monkeypatch):
    from sqlalchemy import create_engine, text

    citizen.api.get(ME)  # the pool now holds a connection
    killer = create_engine(app.config["DATABASE_URL"])
    with killer.connect() as connection:
        killed = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    killer.dispose()
    assert killed >= 1
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # it sat idle past the threshold
    citizen.api.get(ME)
    # The pool may hold other connections the kill ended: drop them before the next test.
    app.extensions["db_engine"].dispose()


def test_a_view_without_limits_never_consults_the_rate_limiter(client, citizen, monkeypatch):
    from flask_limiter import Limiter

    def consulted(_self):
        raise AssertionError("the rate limiter was consulted")

    monkeypatch.setattr(Limiter, "context", property(consulted))
    client.get("/healthz")
    citizen.api.get(ME)
    client.get("/nowhere", expected=404)


def test_an_app_with_rate_limits_switched_off_starts_and_serves(tmp_path):
    from core.limiter import limiter
    from tests.conftest import build_app

    try:
        app = build_app(f"sqlite:///{tmp_path / 'off.db'}", tmp_path, RATELIMIT_ENABLED=False)
        assert app.test_client().get("/healthz").status_code == 200
    finally:
        limiter.enabled = True  # one limiter per process: the next app turns it on again anyway


# A paged list: its rows and its total in one query.

INBOX = "/api/v1/me/notifications"


def _notify(app, user_id: str, count: int) -> None:
    from core.inbox import service as inbox

    with app.app_context():
        for i in range(count):
            inbox.notify(user_id, "test", f"m{i}", "body")
        db.session.commit()


def _paged(app, api, url: str) -> tuple[list[dict], dict, list[str]]:
    import json

    with database_work(app) as work:
        response = api.request("GET", url, 200)
    # the authentication's query aside
    listing = [s for s in work.statements if "auth_sessions" not in s]
    return response.get_json(), json.loads(response.headers["X-Pagination"]), listing


def test_a_page_and_its_total_come_from_one_query(app, citizen):
    _notify(app, citizen.user.id, 5)
    items, meta, statements = _paged(app, citizen.api, f"{INBOX}?page=2&page_size=2")
    assert len(items) == 2
    assert meta == {
        "total": 5,
        "total_pages": 3,
        "first_page": 1,
        "last_page": 3,
        "page": 2,
        "previous_page": 1,
        "next_page": 3,
    }
    assert len(statements) == 1, statements


def test_an_empty_list_costs_one_query(app, citizen):
    items, meta, statements = _paged(app, citizen.api, INBOX)
    assert items == [] and meta == {"total": 0, "total_pages": 0}
    assert len(statements) == 1, statements


def test_a_page_past_the_end_is_empty_and_still_says_the_total(app, citizen):
    _notify(app, citizen.user.id, 3)
    items, meta, statements = _paged(app, citizen.api, f"{INBOX}?page=3&page_size=2")
    assert items == []
    assert meta == {"total": 3, "total_pages": 2, "first_page": 1, "last_page": 2}
    assert len(statements) == 2, statements  # the empty page, then a count


def test_a_distinct_select_is_counted_by_its_distinct_rows(app, citizen):
    from sqlalchemy import select

    from core.auth.models import AuthSession, User
    from core.pagination import SelectPage

    with app.test_request_context():
        # the citizen's user, once per login session: twice without DISTINCT
        login_again = AuthSession(user_id=citizen.user.id)
        db.session.add(login_again)
        db.session.commit()
        users = (
            select(User.id)
            .join(AuthSession, AuthSession.user_id == User.id)
            .where(User.id == citizen.user.id)
            .distinct()
        )
        from flask_smorest.pagination import PaginationParameters

        page = SelectPage(users, PaginationParameters(page=1, page_size=10))
        assert page.page_params.item_count == 1
        assert page.items == [citizen.user.id]


def test_a_plain_hook_is_called_directly_and_a_coroutine_still_goes_the_flask_way(
    app, client, monkeypatch
):
    import flask.app

    def plain() -> str:
        return "ok"

    async def coroutine() -> str:
        return "ok"

    inspected = []
    real = flask.app.iscoroutinefunction

    def inspecting(func):
        inspected.append(func)
        return real(func)

    monkeypatch.setattr(flask.app, "iscoroutinefunction", inspecting)
    assert app.ensure_sync(plain) is plain
    client.request("GET", "/healthz", 200)  # every hook and the view
    assert inspected == []
    # Flask's own ensure_sync: wrapped for asgiref, or refused when it is not installed
    try:
        wrapped = app.ensure_sync(coroutine)
    except RuntimeError as error:
        assert "async" in str(error)
    else:
        assert wrapped is not coroutine and wrapped() == "ok"


def test_a_page_reads_outside_a_transaction(app, citizen):
    """PostgreSQL: the page's query runs in autocommit (no BEGIN and ROLLBACK round trips
    around it); SQLite: in a deferred transaction (no write lock)."""
    _notify(app, citizen.user.id, 3)
    seen: list[tuple[str, object]] = []

    def on_execute(conn, _cursor, statement, *_args):
        autocommit = getattr(conn.connection.dbapi_connection, "autocommit", None)
        seen.append((" ".join(statement.split()[:2]).upper(), autocommit))

    with app.app_context():
        engine = db.engine()
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        assert len(citizen.api.get(f"{INBOX}?page_size=2")) == 2
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    if engine.dialect.name == "postgresql":
        # the login session's query, then the page's: both outside a transaction
        assert [autocommit for _, autocommit in seen] == [True, True], seen
    else:
        # the login session's read and the page's: deferred, neither BEGIN IMMEDIATE
        begins = [statement for statement, _ in seen if statement.startswith("BEGIN")]
        assert begins == ["BEGIN", "BEGIN"], seen


def test_a_write_in_a_transaction_begun_for_reading_raises_and_the_next_one_writes(app, citizen):
    from core.auth.models import AuthSession

    with app.test_request_context():
        db.begin_reading()
        db.session.add(AuthSession(user_id=citizen.user.id))
        with pytest.raises(RuntimeError, match="reading only"):
            db.session.flush()
        db.session.rollback()
        db.session.add(AuthSession(user_id=citizen.user.id))
        db.session.commit()  # a transaction begun the usual way writes
        db.begin_reading()
        db.session.execute(select_one())
        db.begin_reading()  # one already open is kept, not begun again
        db.session.rollback()


def select_one():
    from sqlalchemy import literal, select

    return select(literal(1))
