"""Open311 GeoReport v2: discovery, services, a service's definition, filing and reading
requests, tokens; JSON validated against the standard's schemas, XML parsed, errors as arrays."""

import json
from datetime import datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from civic.models import Application
from core import db
from core.audit.models import AuditEntry
from tests.civic.conftest import QUEUE, passport_service, pothole_service
from tests.conftest import count_rows

BASE = "/open311/v2"
SCHEMAS = Path(__file__).parent / "standards" / "open311"
_REGISTRY = Registry().with_resources(
    (path.name, Resource.from_contents(json.loads(path.read_text()), DRAFT7))
    for path in SCHEMAS.glob("*.json")
)


def validate(document, schema_name):
    schema = _REGISTRY.contents(schema_name)
    errors = list(Draft7Validator(schema, registry=_REGISTRY).iter_errors(document))
    assert errors == [], [e.message for e in errors]


def get_json(client, path, expected=200, schema=None, **kw):
    response = client.request("GET", f"{BASE}/{path}", expected, **kw)
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.get_json()
    if schema:
        validate(body, schema)
    return body


def get_xml(client, path, expected=200, **kw):
    response = client.request("GET", f"{BASE}/{path}", expected, **kw)
    return parse_xml(response)


def parse_xml(response):
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    text = response.get_data(as_text=True)
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.data)  # noqa: S314 - our own answer


def every_datetime_has_an_offset(requests):
    for request in requests:
        for name in ("requested_datetime", "updated_datetime", "expected_datetime"):
            if request[name] is not None:
                assert datetime.fromisoformat(request[name]).tzinfo is not None


@pytest.fixture
def services(publish):
    publish(pothole_service())
    publish(passport_service())  # not Open311: never listed
    publish(passport_service(code="ALLTYPES", fee=None, documents=[], open311=True))


@pytest.fixture
def client_key(make_organisation):
    return make_organisation("open311_client")[1]


def file(client, key, expected=200, fmt="json", headers=None, **fields):
    form = {
        "api_key": key,
        "service_code": "POTHOLE",
        "lat": "37.5665",
        "long": "126.9780",
        "attribute[size]": "large",
        "attribute[depth_cm]": "12",
        "email": "reporter@example.kr",
        "first_name": "Min",
        "last_name": "Park",
        "phone": "+82 10 1234 5678",
        "description": "A deep pothole in the right lane.",
        "media_url": "https://photos.example.kr/p/1.jpg",
    }
    form.update(fields)
    form = {name: value for name, value in form.items() if value is not None}
    return client.request(
        "POST", f"{BASE}/requests.{fmt}", expected, data=form, headers=headers or {}
    )


def test_discovery_names_the_endpoint_and_its_formats(client):
    found = get_json(client, "discovery.json")
    (endpoint,) = found["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2")
    assert endpoint["formats"] == ["text/xml", "application/json"]
    root = get_xml(client, "discovery.xml")
    assert root.tag == "discovery"
    formats = root.find("endpoints/endpoint/formats")
    assert formats is not None
    assert [f.text for f in formats.findall("format")] == ["text/xml", "application/json"]


def test_only_open311_services_are_listed_in_json_and_xml(client, services):
    listed = get_json(client, "services.json?lang=en", schema="services.json")
    assert [s["service_code"] for s in listed] == ["ALLTYPES", "POTHOLE"]
    pothole = listed[1]
    assert pothole == {
        "service_code": "POTHOLE",
        "service_name": "Pothole report",
        "description": "Report a pothole.",
        "metadata": True,
        "type": "realtime",
        "keywords": "pothole, road, 도로, 坑洞",
        "group": "roads",
    }
    root = get_xml(client, "services.xml", headers={"Accept-Language": "ko"})
    assert root.tag == "services"
    items = root.findall("service")
    assert [s.findtext("service_code") for s in items] == ["ALLTYPES", "POTHOLE"]
    assert items[1].findtext("service_name") == "도로 파손 신고"
    assert items[1].findtext("metadata") == "true"
    assert [child.tag for child in items[1]] == list(pothole)


def test_a_service_definition_maps_every_datatype_onto_open311s(client, services):
    found = get_json(client, "services/ALLTYPES.json?lang=en", schema="service-definition.json")
    by_code = {a["code"]: a for a in found["attributes"]}
    assert {code: a["datatype"] for code, a in by_code.items()} == {
        "full_name": "string",
        "reason": "singlevaluelist",
        "pages": "number",
        "birth_date": "string",
        "email": "string",
        "phone": "string",
        "urgent": "singlevaluelist",
        "lost_at": "datetime",
        "notes": "text",
        "extras": "multivaluelist",
        "passport_no": "string",
    }
    assert by_code["birth_date"]["datatype_description"] == "A date (YYYY-MM-DD)."
    assert by_code["urgent"]["values"] == [
        {"key": "true", "name": "true"},
        {"key": "false", "name": "false"},
    ]
    assert by_code["reason"]["values"] == [
        {"key": "lost", "name": "Lost"},
        {"key": "damaged", "name": "Damaged"},
    ]
    assert [a["order"] for a in found["attributes"]] == list(range(1, 12))
    assert by_code["full_name"].items() >= {"description": "Full name", "required": True}.items()
    root = get_xml(client, "services/ALLTYPES.xml")
    assert root.tag == "service_definition"
    attributes = root.findall("attributes/attribute")
    assert len(attributes) == 11
    values = attributes[1].findall("values/value")
    assert [(v.findtext("key"), v.tag) for v in values] == [("lost", "value"), ("damaged", "value")]


def test_a_service_not_flagged_for_open311_is_not_found(client, services):
    errors = get_json(client, "services/PASSPORT-REISSUE.json", expected=404)
    assert errors == [{"code": 404, "description": "service_code was not found."}]
    root = get_xml(client, "services/NOPE.xml", expected=404)
    assert root.tag == "errors" and root.findtext("error/code") == "404"


def test_a_wrong_jurisdiction_is_404_and_the_right_one_or_none_is_fine(client, services):
    for path in ("services", "requests", "services/POTHOLE", "tokens/x"):
        errors = get_json(client, f"{path}.json?jurisdiction_id=elsewhere.gov", expected=404)
        assert errors == [{"code": 404, "description": "jurisdiction_id was not found."}]
    root = get_xml(client, "services.xml?jurisdiction_id=elsewhere.gov", expected=404)
    assert root.findtext("error/description") == "jurisdiction_id was not found."
    get_json(client, "services.json?jurisdiction_id=demo.city", schema="services.json")


def test_a_client_files_a_request_and_reads_it_back_without_personal_data(
    app, client, services, client_key, make_account
):
    created = file(client, client_key).get_json()
    assert list(created[0]) == ["service_request_id", "service_notice", "account_id"]
    request_id = created[0]["service_request_id"]
    assert created[0]["service_notice"] == "We will respond within 3 days."

    listed = get_json(client, "requests.json?lang=en", schema="requests.json")
    assert [r["service_request_id"] for r in listed] == [request_id]
    one = get_json(client, f"requests/{request_id}.json?lang=en", schema="requests.json")
    assert one == listed
    (request,) = one
    assert (request["status"], request["service_code"], request["service_name"]) == (
        "open",
        "POTHOLE",
        "Pothole report",
    )
    assert (request["lat"], request["long"]) == (37.5665, 126.978)
    assert request["agency_responsible"] == "Roads"
    assert request["description"] == "A deep pothole in the right lane."
    every_datetime_has_an_offset(one)
    for personal in ("reporter@example.kr", "Min", "Park", "1234"):
        assert personal not in json.dumps(one)
        assert personal not in client.request("GET", f"{BASE}/requests.xml", 200).get_data(
            as_text=True
        )
    root = get_xml(client, f"requests/{request_id}.xml")
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id") == request_id
    assert root.findtext("request/status") == "open"

    roads = make_account("official", department="ROADS")
    assert [a["id"] for a in roads.api.get(QUEUE)] == [request_id]
    detail = roads.api.get(f"/api/v1/civic/applications/{request_id}")
    assert detail["answers"] == {"size": "large", "depth_cm": 12}
    with app.app_context():
        entry = db.session.query(AuditEntry).filter_by(action="application.filed").one()
        stored = db.session.get(Application, request_id)
        assert stored is not None and stored.contact is not None
        assert stored.contact["email"] == "reporter@example.kr"
    assert entry.actor_role == "open311_client"


def test_a_request_filed_in_xml_answers_in_xml(client, services, client_key):
    root = parse_xml(
        file(
            client,
            client_key,
            fmt="xml",
            lat=None,
            long=None,
            address_string="12 Sejong-daero, Jung-gu",
        )
    )
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id")
    assert root.find("request/account_id") is not None


def test_a_multivaluelist_takes_repeated_values(app, client, services, client_key):
    created = file(
        client,
        client_key,
        service_code="ALLTYPES",
        **{
            "attribute[size]": None,
            "attribute[depth_cm]": None,
            "attribute[full_name]": "Kim",
            "attribute[reason]": "lost",
            "attribute[birth_date]": "1990-04-01",
            "attribute[urgent]": "true",
            "attribute[extras][]": ["courier", "sms"],
        },
    ).get_json()
    with app.app_context():
        stored = db.session.get(Application, created[0]["service_request_id"])
        assert stored is not None
        assert stored.answers["extras"] == ["courier", "sms"]
        assert stored.answers["urgent"] is True


@pytest.mark.parametrize("key", ["", "ck_nope_nope", "hospital"])
def test_a_bad_api_key_is_403_and_writes_nothing(app, client, services, make_organisation, key):
    if key == "hospital":
        key = make_organisation("hospital")[1]
    before = count_rows(app)
    errors = file(client, key, expected=403).get_json()
    assert errors == [
        {
            "code": 403,
            "description": "API key is not valid.",
        }
    ]
    root = parse_xml(file(client, key, expected=403, fmt="xml"))
    assert root.findtext("error/code") == "403"
    assert count_rows(app) == before


@pytest.mark.parametrize(
    ("fields", "status", "mentions"),
    [
        ({"service_code": None}, 400, ["service_code"]),
        ({"service_code": "NOPE"}, 404, ["service_code"]),
        ({"service_code": "PASSPORT-REISSUE"}, 404, ["service_code"]),
        ({"lat": None, "long": None}, 400, ["location"]),
        ({"long": None}, 400, ["lat and long"]),
        ({"lat": "north"}, 400, ["lat and long"]),
        ({"lat": "91"}, 400, ["lat and long"]),
        (
            {"attribute[size]": "huge", "attribute[depth_cm]": "deep"},
            400,
            ["attribute[size]", "attribute[depth_cm]"],
        ),
        ({"attribute[size]": None}, 400, ["attribute[size]"]),
        ({"attribute[colour]": "red"}, 400, ["attribute[colour]"]),
        ({"media_url": "javascript:alert(1)"}, 400, ["media_url"]),
        ({"jurisdiction_id": "elsewhere.gov"}, 404, ["jurisdiction_id"]),
    ],
)
def test_a_bad_request_gets_its_errors_as_an_array_and_writes_nothing(
    app, client, services, client_key, fields, status, mentions
):
    before = count_rows(app)
    errors = file(client, client_key, expected=status, **fields).get_json()
    assert all(set(e) == {"code", "description"} and e["code"] == status for e in errors)
    assert len(errors) == len(mentions)
    for error, mention in zip(errors, mentions, strict=True):
        assert mention in error["description"]
    assert count_rows(app) == before


def test_a_replayed_post_gets_the_first_answer(app, client, services, client_key):
    headers = {"Idempotency-Key": "report-1"}
    first = file(client, client_key, headers=headers)
    rows = count_rows(app)
    again = file(client, client_key, headers=headers)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count_rows(app) == rows


def test_requests_are_filtered_by_id_code_status_and_dates(
    app, client, services, client_key, make_account
):
    potholes = [file(client, client_key).get_json()[0]["service_request_id"] for _ in range(2)]
    other = file(
        client,
        client_key,
        service_code="ALLTYPES",
        **{
            "attribute[size]": None,
            "attribute[depth_cm]": None,
            "attribute[full_name]": "Kim",
            "attribute[reason]": "lost",
            "attribute[birth_date]": "1990-04-01",
        },
    ).get_json()[0]["service_request_id"]
    roads = make_account("official", department="ROADS")
    url = f"/api/v1/civic/applications/{potholes[0]}"
    roads.api.post(f"{url}/claim", expected=200)
    roads.api.post(f"{url}/reject", {"reason": "Duplicate request."}, expected=200)

    def ids(query):
        found = get_json(client, f"requests.json?{query}", schema="requests.json")
        every_datetime_has_an_offset(found)
        return {r["service_request_id"] for r in found}

    assert ids("") == {*potholes, other}
    assert ids("service_code=POTHOLE") == set(potholes)
    assert ids("service_code=POTHOLE,ALLTYPES") == {*potholes, other}
    assert ids("status=closed") == {potholes[0]}
    assert ids("status=open") == {potholes[1], other}
    assert ids("status=open,closed") == {*potholes, other}
    assert ids(f"service_request_id={potholes[0]},{other}") == {potholes[0], other}
    # the ids override the other arguments
    assert ids(f"service_request_id={other}&service_code=POTHOLE") == {other}
    closed = get_json(client, f"requests/{potholes[0]}.json")[0]
    assert (closed["status"], closed["status_notes"]) == ("closed", "Duplicate request.")
    now = datetime.now().astimezone()
    window = {
        "start_date": (now - timedelta(days=1)).isoformat(timespec="seconds"),
        "end_date": (now + timedelta(days=1)).isoformat(timespec="seconds"),
    }
    query = "&".join(f"{k}={v.replace('+', '%2B')}" for k, v in window.items())
    assert ids(query) == {*potholes, other}
    assert ids("start_date=2020-01-01T00:00:00Z&end_date=2020-02-01T00:00:00Z") == set()


@pytest.mark.parametrize(
    "query",
    [
        "start_date=2020-01-01T00:00:00Z&end_date=2020-06-01T00:00:00Z",
        "start_date=yesterday",
        "end_date=2020-01-01T00:00:00",
        "status=pending",
    ],
)
def test_bad_request_filters_are_400(client, services, query):
    errors = get_json(client, f"requests.json?{query}", expected=400)
    assert errors[0]["code"] == 400
    assert get_xml(client, f"requests.xml?{query}", expected=400).tag == "errors"


def test_an_unknown_request_is_404(client, services):
    assert get_json(client, "requests/nope.json", expected=404)[0]["code"] == 404
    assert get_xml(client, "requests/nope.xml", expected=404).findtext("error/code") == "404"


def test_in_batch_mode_a_post_returns_a_token_that_resolves_to_the_request(
    app, client, services, client_key
):
    app.config["OPEN311_REQUEST_TYPE"] = "batch"
    try:
        assert get_json(client, "services.json", schema="services.json")[0]["type"] == "batch"
        created = file(client, client_key).get_json()
    finally:
        app.config["OPEN311_REQUEST_TYPE"] = "realtime"
    assert "service_request_id" not in created[0]
    token = created[0]["token"]
    resolved = get_json(client, f"tokens/{token}.json")
    (listed,) = get_json(client, "requests.json", schema="requests.json")
    assert resolved == [{"service_request_id": listed["service_request_id"], "token": token}]
    root = get_xml(client, f"tokens/{token}.xml")
    assert root.findtext("request/token") == token
    assert root.findtext("request/service_request_id") == listed["service_request_id"]
    assert get_json(client, "tokens/unknown.json", expected=404)[0]["code"] == 404


def test_a_citizen_app_application_of_an_open311_service_is_listed_too(client, citizen, services):
    from tests.civic.conftest import submit

    submit(citizen, service="POTHOLE", answers={"size": "small"}, files={})
    (listed,) = get_json(client, "requests.json", schema="requests.json")
    assert (listed["address"], listed["lat"], listed["description"]) == (None, None, None)
    assert "Test citizen" not in json.dumps(listed)


@pytest.mark.parametrize("field", ["service_code", "description", "attribute[size]"])
def test_a_nul_in_a_posted_field_is_400_in_open311s_shape_and_writes_nothing(
    app, client, services, client_key, field
):
    rows = count_rows(app)
    refused = file(client, client_key, expected=400, **{field: "PO\x00THOLE"}).get_json()
    assert refused[0]["code"] == 400 and "NUL" in refused[0]["description"]
    assert count_rows(app) == rows


def test_a_nul_in_a_query_argument_is_400_not_a_database_error(client, services):
    refused = client.request("GET", f"{BASE}/requests.json?service_request_id=a%00b", 400)
    assert refused.get_json()[0]["code"] == 400
