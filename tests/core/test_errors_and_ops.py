"""One error shape everywhere; health, readiness, metrics, request ids, docs."""

import json
import logging

from openapi_spec_validator import validate

from tests.conftest import build_app


def test_an_unknown_url_is_a_json_404(client):
    body = client.get("/api/v1/nothing-here", expected=404)
    assert body["code"] == 404 and body["status"] == "Not Found" and body["message"]


def test_a_wrong_method_is_a_json_405_with_allow(client):
    response = client.request("DELETE", "/api/v1/auth/login", 405)
    assert response.get_json()["code"] == 405
    assert "POST" in response.headers["Allow"]


def test_a_crash_is_a_bare_500_and_the_traceback_is_logged_with_the_request_id(
    app, tmp_path, caplog
):
    crashing = build_app(app.config["DATABASE_URL"], tmp_path, PROPAGATE_EXCEPTIONS=False)

    @crashing.get("/test/crash")
    def crash():
        raise ValueError("secret internals")

    with caplog.at_level(logging.ERROR):
        response = crashing.test_client().get("/test/crash", headers={"X-Request-ID": "req-123"})
    body = response.get_data(as_text=True)
    assert response.status_code == 500
    assert json.loads(body)["code"] == 500
    assert "secret internals" not in body and "Traceback" not in body
    assert response.headers["X-Request-ID"] == "req-123"
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and "secret internals" in str(logged[0].exc_info[1])
    assert logged[0].request_id == "req-123"


def test_the_request_id_is_echoed_or_made(client):
    given = client.request("GET", "/healthz", 200, headers={"X-Request-ID": "abc-1"})
    assert given.headers["X-Request-ID"] == "abc-1"
    made = client.request("GET", "/healthz", 200, headers={"X-Request-ID": "bad id with spaces"})
    assert len(made.headers["X-Request-ID"]) == 32


def test_healthz_and_readyz_answer_when_migrated(client):
    assert client.get("/healthz") == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready["status"] == "ready" and ready["revision"]


def test_readyz_is_503_on_an_unmigrated_database(databases, tmp_path):
    bare = build_app(databases.create(), tmp_path)
    response = bare.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "not migrated"


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path):
    gone = build_app("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path)
    response = gone.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"


def test_metrics_count_requests_by_route_and_status(client):
    client.get("/healthz")
    client.get("/api/v1/auth/me", expected=401)
    text = client.request("GET", "/metrics", 200).get_data(as_text=True)
    assert 'civic_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/api/v1/auth/me",status="401"' in text
    assert "civic_http_request_duration_seconds_bucket" in text
    assert "# TYPE civic_job_runs_total counter" in text


def test_the_openapi_document_is_valid_and_declares_security(client):
    spec = client.get("/openapi.json")
    validate(spec)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["apiKeyAuth"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert spec["paths"]["/api/v1/admin/audit"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in spec["paths"]["/api/v1/auth/login"]["post"]


def test_swagger_ui_is_served_without_a_cdn(client):
    page = client.request("GET", "/docs", 200).get_data(as_text=True)
    assert "/docs/assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    client.request("GET", "/docs/assets/swagger-ui-bundle.js", 200)


def test_every_route_declares_who_may_call_it(app):
    undeclared = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.endpoint in ("static", "api-docs.openapi_json", "api-docs.openapi_swagger_ui"):
            continue
        view_class = getattr(view, "view_class", None)
        handlers = (
            [getattr(view_class, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}]
            if view_class
            else [view]
        )
        undeclared += [f"{rule} {h.__name__}" for h in handlers if not hasattr(h, "__access__")]
    assert undeclared == []
