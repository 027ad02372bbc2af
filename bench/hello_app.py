"""The baselines of ``bench_request_overhead.py``, under the same gunicorn settings as the app.

``/hello``: bare Flask, one JSON route, nothing else (the issue's baseline).

``/floor/...``: the floor of an authenticated request on this machine: bare Flask doing only
what such a request cannot skip, with nothing of ours around it (no request id, log line,
metrics, rate limiter, locale, schema, ORM or pool). It checks the Bearer token's HS256
signature and expiry, reads the login session joined to its user in one query, and for
``/floor/payments`` reads the page of payments with its total in one more, each on one raw
psycopg connection per worker in autocommit (the same two round trips as the app's). The gap
between the app and its floor is what our code costs; the gap between the floor and hello is
what PostgreSQL's round trips cost, which no code in the app can remove.
"""

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any

from flask import Flask, Response, abort, jsonify, request

app = Flask(__name__)


@app.get("/hello")
def hello() -> Response:
    return jsonify(status="ok")


_SESSION = (
    "SELECT users.id, users.name, users.role, users.department_code, users.email, users.locale "
    "FROM users JOIN auth_sessions ON auth_sessions.user_id = users.id "
    "WHERE auth_sessions.id = %s AND auth_sessions.user_id = %s "
    "AND auth_sessions.revoked_at IS NULL AND users.is_active"
)
_PAGE = (
    "SELECT payments.*, count(*) OVER () FROM payments WHERE payments.user_id = %s "
    "ORDER BY payments.created_at DESC, payments.id LIMIT 10 OFFSET 0"
)
_connection: Any = None
FLOOR_APPLICATION = "bench-floor"  # its connections are not the app's (bench counts the app's)


def _cursor() -> Any:
    global _connection  # one connection per worker process, made on first use
    if _connection is None:
        import psycopg

        url = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        _connection = psycopg.connect(url, autocommit=True, application_name=FLOOR_APPLICATION)
    return _connection.cursor()


def _user() -> tuple[Any, ...]:
    """The live session's user of the Bearer token, or 401."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        header, payload, signature = token.split(".")
        signed = f"{header}.{payload}".encode()
        key = os.environ["JWT_SECRET_KEY"].encode()
        expected = hmac.new(key, signed, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, base64.urlsafe_b64decode(signature + "==")):
            abort(401)
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    except ValueError:
        abort(401)
    if claims["exp"] <= time.time():
        abort(401)
    with _cursor() as cursor:
        row = cursor.execute(_SESSION, (claims["sid"], claims["sub"])).fetchone()
    if row is None:
        abort(401)
    return tuple(row)


@app.get("/floor/auth/me")
def floor_me() -> Response:
    user_id, name, role, department, email, locale = _user()
    return jsonify(
        kind="user", id=user_id, name=name, role=role, email=email, department=department,
        organisation_kind=None, locale=locale,
    )  # fmt: skip


@app.get("/floor/payments")
def floor_payments() -> Response:
    user_id = _user()[0]
    with _cursor() as cursor:
        rows = cursor.execute(_PAGE, (user_id,)).fetchall()
        names = [column.name for column in (cursor.description or [])[:-1]]
    total = rows[0][-1] if rows else 0
    response = jsonify([dict(zip(names, row[:-1], strict=True)) for row in rows])
    response.headers["X-Pagination"] = json.dumps({"total": total, "total_pages": -(-total // 10)})
    return response
