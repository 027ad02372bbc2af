"""A real HTTP server on loopback, called the way the mobile app calls it."""

import json
import urllib.error
import urllib.request

from tests.conftest import PASSWORD


def call(method: str, url: str, body=None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_register_login_refresh_and_me_over_http(live_server):
    status, user = call(
        "POST",
        f"{live_server}/api/v1/auth/register",
        {"email": "min@seoul.test", "password": PASSWORD, "name": "Min"},
    )
    assert status == 201
    status, tokens = call(
        "POST",
        f"{live_server}/api/v1/auth/login",
        {"email": "min@seoul.test", "password": PASSWORD},
    )
    assert status == 200
    status, rotated = call(
        "POST", f"{live_server}/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}
    )
    assert status == 200
    status, me = call("GET", f"{live_server}/api/v1/auth/me", token=rotated["access_token"])
    assert (status, me["id"], me["email"]) == (200, user["id"], "min@seoul.test")
    status, _ = call("GET", f"{live_server}/api/v1/auth/me")
    assert status == 401


def test_health_and_openapi_over_http(live_server):
    assert call("GET", f"{live_server}/healthz") == (200, {"status": "ok"})
    status, spec = call("GET", f"{live_server}/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
