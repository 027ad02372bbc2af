"""Shared schema pieces (names, times, pages) and a spec that says what the server does."""

import json
import urllib.parse

import flask_smorest
import pytest

from tests.conftest import PASSWORD, build_app, count_rows

PAGED = ("/api/v1/me/notifications", "/api/v1/admin/audit", "/api/v1/payments")


def assert_422_naming(response, location: str, name: str) -> None:
    assert response.status_code == 422, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["code"] == 422 and body["message"]
    assert name in body["errors"][location]


# --- Pages -------------------------------------------------------------------------------------


def test_page_numbers_and_sizes_past_their_bounds_are_refused(citizen, admin):
    queries = [
        "page=9223372036854775807",
        "page=9223372036854775808",
        "page=1000001",
        "page=0",
        "page_size=101",
        "page_size=9223372036854775807",
        "page_size=0",
    ]
    callers = {"/api/v1/me/notifications": citizen.api, "/api/v1/admin/audit": admin.api}
    callers["/api/v1/payments"] = citizen.api
    for url, api in callers.items():
        for query in queries:
            response = api.client.get(f"{url}?{query}", headers=api.headers)
            assert_422_naming(response, "query", query.split("=")[0])


def test_the_last_allowed_page_is_an_empty_page_not_an_error(citizen):
    response = citizen.api.request("GET", "/api/v1/payments?page=1000000&page_size=100", 200)
    assert response.get_json() == []


def test_the_spec_declares_the_page_bounds(client):
    spec = client.get("/openapi.json")
    for path in PAGED:
        parameters = {p["name"]: p["schema"] for p in spec["paths"][path]["get"]["parameters"]}
        assert (parameters["page"]["minimum"], parameters["page"]["maximum"]) == (1, 1_000_000)
        assert (parameters["page_size"]["minimum"], parameters["page_size"]["maximum"]) == (1, 100)


def test_x_pagination_is_declared_as_the_json_string_it_is(client, citizen):
    spec = client.get("/openapi.json")
    header = spec["components"]["headers"]["PAGINATION"]
    assert header["schema"] == {"type": "string"}
    assert "PaginationMetadata" in spec["components"]["schemas"]
    for path in PAGED:
        declared = spec["paths"][path]["get"]["responses"]["200"]["headers"]["X-Pagination"]
        assert declared == {"$ref": "#/components/headers/PAGINATION"}
    response = citizen.api.request("GET", "/api/v1/me/notifications", 200)
    metadata = json.loads(response.headers["X-Pagination"])
    assert metadata == {"total": 0, "total_pages": 0}


# --- Times -------------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_an_audit_time_out_of_range_is_refused_and_named(admin, when):
    for name in ("since", "until"):
        query = urllib.parse.urlencode({name: when})
        response = admin.api.client.get(f"/api/v1/admin/audit?{query}", headers=admin.api.headers)
        assert_422_naming(response, "query", name)


def test_audit_times_at_the_edges_of_the_range_are_accepted(admin, make_organisation):
    make_organisation()
    for when in ("0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00"):
        query = urllib.parse.urlencode({"since": when})
        admin.api.get(f"/api/v1/admin/audit?{query}")
    everything = admin.api.get("/api/v1/admin/audit")
    query = urllib.parse.urlencode({"since": "2000-01-01T09:00:00+09:00"})
    assert admin.api.get(f"/api/v1/admin/audit?{query}") == everything
    query = urllib.parse.urlencode({"until": "2000-01-01T09:00:00+09:00"})
    assert admin.api.get(f"/api/v1/admin/audit?{query}") == []


# --- Names -------------------------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   ", "\t\n", "\u3000"])
def test_a_blank_name_is_refused_at_registration(app, client, blank):
    before = count_rows(app)
    body = {"email": "b@example.test", "password": PASSWORD, "name": blank}
    error = client.post("/api/v1/auth/register", body, expected=422)
    assert error["errors"]["json"]["name"] == ["Must not be blank."]  # a list, like every field's
    assert count_rows(app) == before


def test_blank_organisation_names_and_key_labels_are_refused(app, admin, make_organisation):
    organisation_id, _ = make_organisation()
    before = count_rows(app)
    for blank in ("", "   ", "\t\n"):
        error = admin.api.post(
            "/api/v1/admin/organisations", {"name": blank, "kind": "hospital"}, expected=422
        )
        assert error["errors"]["json"]["name"] == ["Must not be blank."]
        error = admin.api.post(
            f"/api/v1/admin/organisations/{organisation_id}/api-keys", {"label": blank}, 422
        )
        assert "label" in error["errors"]["json"]
    assert count_rows(app) == before


def test_names_are_stored_without_surrounding_whitespace(client, admin):
    user = client.post(
        "/api/v1/auth/register",
        {"email": "t@example.test", "password": PASSWORD, "name": "  Min Ji  "},
        expected=201,
    )
    assert user["name"] == "Min Ji"
    organisation = admin.api.post(
        "/api/v1/admin/organisations", {"name": " Seoul Clinic ", "kind": "hospital"}, expected=201
    )
    assert organisation["name"] == "Seoul Clinic"


def test_the_spec_says_a_name_needs_a_character_that_is_not_blank(client):
    schemas = client.get("/openapi.json")["components"]["schemas"]
    for schema, field in [("Register", "name"), ("OrganisationCreate", "name")]:
        declared = schemas[schema]["properties"][field]
        assert declared["pattern"] == r"\S" and declared["minLength"] == 1


# --- Request schemas state what the server enforces ----------------------------------------------


def test_the_spec_says_consent_must_be_given_to_the_current_text(client, app):
    card = client.get("/openapi.json")["components"]["schemas"]["SaveCard"]["properties"]
    assert card["consent_off_session"]["enum"] == [True]
    assert card["consent_text_version"]["enum"] == [app.config["OFF_SESSION_CONSENT_VERSION"]]


def test_the_consent_version_in_the_spec_follows_the_setting(app, tmp_path):
    other = build_app(app.config["DATABASE_URL"], tmp_path, OFF_SESSION_CONSENT_VERSION="2027-03")
    spec = other.test_client().get("/openapi.json").get_json()
    version = spec["components"]["schemas"]["SaveCard"]["properties"]["consent_text_version"]
    assert version["enum"] == ["2027-03"]


def test_the_webhook_declares_its_body_and_the_stripe_signature_header(client):
    operation = client.get("/openapi.json")["paths"]["/api/v1/payments/webhooks/stripe"]["post"]
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert headers["Stripe-Signature"]["required"] is True
    assert headers["Stripe-Signature"]["schema"]["type"] == "string"
    body = operation["requestBody"]
    assert body["required"] is True and "application/json" in body["content"]
    assert "application/json" in operation["responses"]["200"]["content"]


def test_idempotency_key_declares_its_length(client):
    operation = client.get("/openapi.json")["paths"]["/api/v1/payments/{payment_id}/refunds"]
    header = next(p for p in operation["post"]["parameters"] if p["name"] == "Idempotency-Key")
    assert (header["schema"]["minLength"], header["schema"]["maxLength"]) == (1, 255)


# --- Every module reads input the same way -------------------------------------------------------


def test_a_blueprint_that_skips_the_input_checks_is_refused_at_startup(app):
    plain = flask_smorest.Blueprint("plain", __name__, url_prefix="/plain")
    api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    with pytest.raises(TypeError, match=r"core\.api\.Blueprint"):
        api.register_blueprint(plain)


def test_creating_operations_link_to_what_can_be_done_with_what_they_created(client):
    spec = client.get("/openapi.json")
    links = spec["paths"]["/api/v1/parking/lots"]["post"]["responses"]["201"]["links"]
    assert links["put-tariff"] == {
        "operationRef": "#/paths/~1api~1v1~1parking~1lots~1{lot_id}~1tariff/put",
        "parameters": {"lot_id": "$response.body#/id"},
    }
    services = spec["paths"]["/api/v1/civic/services"]["post"]["responses"]["201"]["links"]
    assert services["post-publish"]["parameters"] == {"code": "$response.body#/code"}
    # Adding charges answers with the visit: its id is not a charge's, so no link claims it.
    charges = spec["paths"]["/api/v1/health/visits/{visit_id}/charges"]["post"]["responses"]
    assert "links" not in charges["201"]


def test_every_declared_link_points_at_an_operation_and_fills_its_path(client):
    spec = client.get("/openapi.json")
    checked = 0
    for item in spec["paths"].values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for response in operation.get("responses", {}).values():
                for link in response.get("links", {}).values():
                    path, method = link["operationRef"].removeprefix("#/paths/").rsplit("/", 1)
                    path = path.replace("~1", "/").replace("~0", "~")
                    assert method in spec["paths"][path], link["operationRef"]
                    target = spec["paths"][path]  # path parameters: on the path or the operation
                    declared = target.get("parameters", []) + target[method].get("parameters", [])
                    named = {p["name"] for p in declared if p["in"] == "path"}
                    assert named == set(link["parameters"]), link
                    checked += 1
    assert checked >= 30
