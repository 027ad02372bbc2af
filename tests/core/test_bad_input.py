"""Bad input is refused where it enters: a 4xx in the one error shape, nothing written, the same
answer on SQLite and PostgreSQL (which refuses NUL characters that SQLite would store)."""

import http.client
import json
import urllib.parse

import pytest

from tests.conftest import PASSWORD, count_rows

NUL = "\u0000"
SURROGATE = "\ud800"


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["code"] == status and body["status"] and body["message"]
    return body


def post_raw(client, url: str, text: str, headers: dict[str, str] | None = None):
    """POST a body exactly as given (a JSON text the test client would not produce)."""
    return client.client.post(
        url,
        data=text.encode("utf-8", "surrogatepass"),
        headers={"Content-Type": "application/json", **client.headers, **(headers or {})},
    )


# --- NUL characters and lone surrogates in JSON bodies -------------------------------------


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize("field", ["email", "password", "name"])
def test_register_refuses_a_nul_or_a_lone_surrogate_in_any_field_and_names_it(
    app, client, bad, field
):
    body = {"email": "min@example.test", "password": PASSWORD, "name": "Min"}
    body[field] = body[field][:3] + bad + body[field][3:]
    before = count_rows(app)
    response = post_raw(client, "/api/v1/auth/register", json.dumps(body))
    error = assert_error_shape(response, 422)
    assert field in error["errors"]["json"]
    assert count_rows(app) == before


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
def test_login_refuses_a_nul_or_a_lone_surrogate(app, client, citizen, bad):
    before = count_rows(app)
    body = json.dumps({"email": citizen.user.email + bad, "password": PASSWORD})
    assert_error_shape(post_raw(client, "/api/v1/auth/login", body), 422)
    body = json.dumps({"email": citizen.user.email, "password": PASSWORD + bad})
    assert_error_shape(post_raw(client, "/api/v1/auth/login", body), 422)
    assert count_rows(app) == before


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
def test_refresh_refuses_a_nul_or_a_lone_surrogate(app, client, citizen, bad):
    token_id, _, secret = citizen.refresh_token.partition(".")
    before = count_rows(app)
    for forged in (f"{token_id}{bad}.{secret}", f"{token_id}.{secret}{bad}"):
        body = json.dumps({"refresh_token": forged})
        assert_error_shape(post_raw(client, "/api/v1/auth/refresh", body), 422)
    assert count_rows(app) == before
    client.post("/api/v1/auth/refresh", {"refresh_token": citizen.refresh_token})


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "lone-surrogate"])
def test_an_organisation_name_with_a_nul_or_a_lone_surrogate_is_refused(app, admin, bad):
    before = count_rows(app)
    body = json.dumps({"name": f"City{bad}Hospital", "kind": "hospital"})
    error = assert_error_shape(post_raw(admin.api, "/api/v1/admin/organisations", body), 422)
    assert "name" in error["errors"]["json"]
    assert count_rows(app) == before


def test_a_nul_or_a_lone_surrogate_in_an_object_key_is_refused(app, client):
    for key in ("na\u0000me", "na\ud800me"):
        body = json.dumps({"email": "a@example.test", "password": PASSWORD, key: "x"})
        assert_error_shape(post_raw(client, "/api/v1/auth/register", body), 422)
    assert count_rows(app)["users"] == 0


# --- NUL characters in paths and query strings ---------------------------------------------


NUL_PATHS = [
    ("citizen", "GET", "/api/v1/payments/abc%00def"),
    ("admin", "GET", "/api/v1/payments/abc%00def"),
    ("citizen", "DELETE", "/api/v1/payments/methods/abc%00"),
    ("citizen", "POST", "/api/v1/me/notifications/%00/read"),
    ("admin", "GET", "/api/v1/admin/organisations/%00x/api-keys"),
    ("admin", "POST", "/api/v1/admin/organisations/%00x/api-keys"),
    ("admin", "DELETE", "/api/v1/admin/organisations/x/api-keys/%00"),
    ("admin", "POST", "/api/v1/payments/%00/refunds"),
]


def test_an_id_with_a_nul_in_the_path_is_not_found(app, citizen, admin):
    callers = {"citizen": citizen.api, "admin": admin.api}
    before = count_rows(app)
    for who, method, url in NUL_PATHS:
        api = callers[who]
        kwargs = (
            {"json": {"reason": "test"} if "refunds" in url else {}} if method == "POST" else {}
        )
        response = api.client.open(url, method=method, headers=api.headers, **kwargs)
        assert_error_shape(response, 404)
    assert count_rows(app) == before


@pytest.mark.parametrize("name", ["actor", "object_type", "object_id"])
def test_an_audit_filter_with_a_nul_is_refused_and_named(admin, name):
    response = admin.api.client.get(
        f"/api/v1/admin/audit?{name}=user%3A%00", headers=admin.api.headers
    )
    error = assert_error_shape(response, 422)
    assert name in error["errors"]["query"]


# --- Structure, numbers and times ------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_nested_deeper_than_the_limit_is_a_400(app, client, depth):
    before = count_rows(app)
    response = post_raw(client, "/api/v1/auth/register", "[" * depth + "]" * depth)
    body = assert_error_shape(response, 400)
    assert "nested" in body["message"]
    response = post_raw(client, "/api/v1/auth/login", '{"email":' + "{" * depth + "}" * depth)
    assert_error_shape(response, 400)
    assert count_rows(app) == before


def test_json_nested_within_the_limit_is_parsed_as_usual(client):
    nested = "[" * 30 + "]" * 30
    body = '{"email": "a@example.test", "password": "correct-horse", "name": ' + nested + "}"
    error = assert_error_shape(post_raw(client, "/api/v1/auth/register", body), 422)
    assert "name" in error["errors"]["json"]


# --- Content type and size -------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", None],
)
def test_a_body_in_the_wrong_content_type_is_a_415_naming_json(app, client, content_type):
    before = count_rows(app)
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.client.post(
        "/api/v1/auth/register", data=b"email=a%40example.test&name=Min", headers=headers
    )
    body = assert_error_shape(response, 415)
    assert "application/json" in body["message"]
    assert count_rows(app) == before


def test_a_json_variant_content_type_is_accepted(client):
    response = client.client.post(
        "/api/v1/auth/register",
        data=json.dumps({"email": "v@example.test", "password": PASSWORD, "name": "V"}),
        headers={"Content-Type": "application/vnd.api+json; charset=utf-8"},
    )
    assert response.status_code == 201


def test_a_post_without_a_body_still_names_the_missing_fields(client):
    response = client.client.post("/api/v1/auth/register")
    error = assert_error_shape(response, 422)
    assert set(error["errors"]["json"]) == {"email", "password", "name"}


def test_an_oversized_chunked_body_without_content_length_is_a_413(app, live_server):
    before = count_rows(app)
    limit = app.config["MAX_CONTENT_LENGTH"]
    address = urllib.parse.urlsplit(live_server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    payload = b'{"email": "big@example.test", "password": "' + b"x" * (limit + 10) + b'"}'
    chunks = (payload[i : i + 65536] for i in range(0, len(payload), 65536))
    connection.request(
        "POST",
        "/api/v1/auth/register",
        body=chunks,
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 413 and body["code"] == 413, body
    assert count_rows(app) == before


def test_a_header_with_a_nul_is_a_400_and_writes_nothing(app, admin):
    before = count_rows(app)
    response = admin.api.client.post(
        "/api/v1/admin/organisations",
        json={"name": "Clinic", "kind": "hospital"},
        headers={**admin.api.headers, "Idempotency-Key": "key\x00one"},
    )
    assert_error_shape(response, 400)
    assert count_rows(app) == before


def test_a_number_too_long_to_read_is_a_400(app, client, admin):
    before = count_rows(app)
    body = '{"email": "n@example.test", "password": "correct-horse", "name": ' + "9" * 5000 + "}"
    assert_error_shape(post_raw(client, "/api/v1/auth/register", body), 400)
    body = '{"reason": "test", "amount": ' + "9" * 5000 + "}"
    assert_error_shape(post_raw(admin.api, "/api/v1/payments/x/refunds", body), 400)
    assert count_rows(app) == before
