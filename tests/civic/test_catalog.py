"""Departments and the service catalog: drafts, versions, publishing, search in three languages."""

import json

import pytest

from core import db
from core.audit.models import AuditEntry
from tests.civic.conftest import (
    DEPARTMENTS,
    SERVICES,
    names,
    passport_service,
    pothole_service,
    send,
)
from tests.conftest import count_rows


def codes(listing):
    return [service["code"] for service in listing]


def test_an_admin_adds_and_lists_departments(admin, departments):
    listed = admin.api.get(DEPARTMENTS)
    assert [d["code"] for d in listed] == ["CIVIL-REG", "ROADS"]
    assert listed[1]["name"] == {"ko": "도로과", "en": "Roads", "zh": "道路科"}


def test_a_department_code_is_taken_once(admin, departments):
    body = {"code": "ROADS", "name": names("도로", "Roads", "道路")}
    admin.api.post(DEPARTMENTS, body, expected=409)


@pytest.mark.parametrize(
    "body",
    [
        {"code": "roads", "name": names("a", "b", "c")},
        {"code": "PARKS", "name": {"ko": "공원"}},
        {"code": "PARKS"},
    ],
)
def test_a_bad_department_is_refused(admin, body):
    admin.api.post(DEPARTMENTS, body, expected=422)


def test_only_admins_manage_departments_and_services(citizen, official, departments):
    citizen.api.get(DEPARTMENTS, expected=403)
    official.api.post(DEPARTMENTS, {"code": "X1", "name": names("a", "b", "c")}, expected=403)
    official.api.post(SERVICES, passport_service(), expected=403)


def test_a_new_service_is_a_draft_nobody_else_sees(admin, client, departments):
    created = admin.api.post(SERVICES, passport_service(), expected=201)
    assert (created["status"], created["version"], created["published_version"]) == (
        "draft",
        1,
        None,
    )
    assert created["name"]["ko"] == "여권재발급"
    client.get(f"{SERVICES}/PASSPORT-REISSUE", expected=404)
    assert client.get(SERVICES) == []


def test_a_published_service_is_found_in_each_language(client, publish):
    publish(passport_service())
    publish(pothole_service())
    for query, lang, name in (
        ("여권", "ko", "여권재발급"),
        ("passport", "en", "Passport reissue"),
        ("护照", "zh", "护照补发"),
        ("REISSUE", "en", "Passport reissue"),
        ("damaged", "zh", "护照补发"),
    ):
        found = client.get(f"{SERVICES}?q={query}&lang={lang}")
        assert [(s["code"], s["name"]) for s in found] == [("PASSPORT-REISSUE", name)], query


def test_a_part_of_a_korean_compound_finds_it_with_or_without_spaces(client, publish):
    publish(passport_service())
    publish(pothole_service(name=names("도로 파손 신고", "Pothole report", "道路坑洞报告")))
    assert codes(client.get(f"{SERVICES}?q=재발급")) == ["PASSPORT-REISSUE"]
    assert codes(client.get(f"{SERVICES}?q=여권 재발급")) == ["PASSPORT-REISSUE"]
    assert codes(client.get(f"{SERVICES}?q=파손신고")) == ["POTHOLE"]
    assert codes(client.get(f"{SERVICES}?q=재발급 pothole")) == []


def test_search_filters_by_category_and_pages(client, publish):
    for n in range(5):
        publish(pothole_service(code=f"ROAD-{n}"))
    publish(passport_service())
    response = client.request("GET", f"{SERVICES}?category=roads&page=2&page_size=2", 200)
    assert codes(response.get_json()) == ["ROAD-2", "ROAD-3"]
    paging = json.loads(response.headers["X-Pagination"])
    assert (paging["total"], paging["total_pages"], paging["page"]) == (5, 3, 2)
    assert codes(client.get(f"{SERVICES}?category=passports")) == ["PASSPORT-REISSUE"]


def test_search_terms_are_text_not_patterns(client, publish):
    publish(passport_service())
    assert client.get(f"{SERVICES}?q=%25") == []
    assert client.get(f"{SERVICES}?q=_") == []


def test_a_service_is_shown_in_the_language_asked_or_the_requests(client, publish):
    publish(passport_service())
    shown = client.get(f"{SERVICES}/PASSPORT-REISSUE?lang=zh")
    assert (shown["name"], shown["lang"], shown["version"]) == ("护照补发", "zh", 1)
    assert shown["department"] == {"code": "CIVIL-REG", "name": "民事登记处"}
    assert shown["fields"][1]["values"][0] == {"key": "lost", "name": "遗失"}
    assert shown["documents"][0]["label"] == "护照照片"
    assert shown["fee"] == {"amount": 53000, "currency": "KRW"}
    english = client.get(f"{SERVICES}/PASSPORT-REISSUE", headers={"Accept-Language": "en"})
    assert english["name"] == "Passport reissue"
    client.get(f"{SERVICES}/PASSPORT-REISSUE?lang=fr", expected=422)


def test_editing_a_published_service_makes_a_new_version_published_on_demand(
    app, admin, client, publish
):
    publish(passport_service())
    changed = send(admin, "PATCH", f"{SERVICES}/PASSPORT-REISSUE", {"processing_days": 3}, 200)
    assert (changed["version"], changed["latest_version"], changed["published_version"]) == (
        2,
        2,
        1,
    )
    assert client.get(f"{SERVICES}/PASSPORT-REISSUE")["processing_days"] == 5  # still v1
    # a second change edits the same draft
    send(admin, "PATCH", f"{SERVICES}/PASSPORT-REISSUE", {"keywords": ["passport"]}, 200)
    published = admin.api.post(f"{SERVICES}/PASSPORT-REISSUE/publish", expected=200)
    assert (published["version"], published["published_version"]) == (2, 2)
    shown = client.get(f"{SERVICES}/PASSPORT-REISSUE")
    assert (shown["version"], shown["processing_days"], shown["keywords"]) == (2, 3, ["passport"])
    admin.api.post(f"{SERVICES}/PASSPORT-REISSUE/publish", expected=409)
    with app.app_context():
        actions = [
            e.action
            for e in db.session.query(AuditEntry)
            .filter_by(object_type="service")
            .order_by(AuditEntry.at)
        ]
    assert actions == [
        "service.created",
        "service.published",
        "service.updated",
        "service.updated",
        "service.published",
    ]


def test_a_retired_service_leaves_the_catalog(admin, client, publish):
    publish(passport_service())
    retired = admin.api.post(f"{SERVICES}/PASSPORT-REISSUE/retire", expected=200)
    assert retired["status"] == "retired"
    client.get(f"{SERVICES}/PASSPORT-REISSUE", expected=404)
    assert client.get(f"{SERVICES}?q=passport") == []
    admin.api.post(f"{SERVICES}/PASSPORT-REISSUE/retire", expected=409)
    admin.api.post(f"{SERVICES}/PASSPORT-REISSUE/publish", expected=200)
    assert codes(client.get(f"{SERVICES}?q=passport")) == ["PASSPORT-REISSUE"]


def test_a_service_code_is_taken_once(admin, publish):
    publish(passport_service())
    admin.api.post(SERVICES, passport_service(), expected=409)


def field(**overrides):
    base = {"code": "x", "label": names("a", "b", "c"), "datatype": "string"}
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("change", "at"),
    [
        ({"department": "NOPE"}, "department"),
        ({"fee": {"amount": 0, "currency": "KRW"}}, "amount"),
        ({"fee": {"amount": 100, "currency": "XYZ"}}, "currency"),
        ({"fee": {"amount": 10.5, "currency": "KRW"}}, "fee"),
        ({"processing_days": 0}, "processing_days"),
        ({"category": "Passports!"}, "category"),
        ({"name": {"ko": "여권"}}, "name"),
        ({"fields": [field(datatype="singlevaluelist")]}, "fields"),
        ({"fields": [field(values=[{"key": "a", "name": names("a", "b", "c")}])]}, "fields"),
        ({"fields": [field(min=3)]}, "fields"),
        ({"fields": [field(datatype="number", min=5, max=1)]}, "fields"),
        ({"fields": [field(pattern="([")]}, "fields"),
        ({"fields": [field(), field()]}, "fields"),
        ({"fields": [field(code="attribute[x]")]}, "fields"),
        ({"fields": [field(datatype="colour")]}, "fields"),
        (
            {
                "documents": [
                    {
                        "code": "d",
                        "label": names("a", "b", "c"),
                        "types": ["text/html"],
                        "max_bytes": 10,
                    }
                ]
            },
            "documents",
        ),
        (
            {
                "documents": [
                    {
                        "code": "d",
                        "label": names("a", "b", "c"),
                        "types": ["image/png"],
                        "max_bytes": 10**9,
                    }
                ]
            },
            "documents",
        ),
        ({"open311": True}, "open311"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_a_bad_service_names_its_field_and_writes_nothing(app, admin, departments, change, at):
    before = count_rows(app)
    error = admin.api.post(SERVICES, passport_service(**change), expected=422)
    assert at in json.dumps(error["errors"])
    assert count_rows(app) == before


def test_a_bad_change_writes_nothing(app, admin, publish):
    publish(passport_service())
    before = count_rows(app)
    send(admin, "PATCH", f"{SERVICES}/PASSPORT-REISSUE", {"department": "NOPE"}, 422)
    send(admin, "PATCH", f"{SERVICES}/NOPE", {"processing_days": 2}, 404)
    assert count_rows(app) == before
