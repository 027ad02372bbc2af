"""The issue's "done when", end to end over real HTTP (a live server and ``requests``): only
the deadline sweep runs in-process, as the scheduler would run it, with the clock moved on."""

from datetime import datetime, timedelta
from typing import Any

import requests
import time_machine

from core import scheduler
from tests.health.conftest import FACES, TERMS

CONSENT = {"consent_off_session": True, "consent_text_version": "2026-11"}


class Http:
    def __init__(self, base: str, headers: dict[str, str] | None = None) -> None:
        self.base, self.headers = base, headers or {}

    def call(self, method: str, path: str, expected: int, **kw: Any) -> Any:
        response = requests.request(
            method, self.base + path, headers=self.headers, timeout=30, **kw
        )
        assert response.status_code == expected, (path, response.status_code, response.text)
        return response.json() if response.content else None

    def login(self, email: str, password: str) -> "Http":
        tokens = self.call(
            "POST", "/api/v1/auth/login", 200, json={"email": email, "password": password}
        )
        return Http(self.base, {"Authorization": f"Bearer {tokens['access_token']}"})


def _photo(name: str) -> dict[str, Any]:
    return {"image": (f"{name}.jpg", (FACES / f"{name}.jpg").read_bytes(), "image/jpeg")}


def _sweep(app, moment: datetime) -> None:
    (job,) = [j for j in scheduler.jobs_of(app) if j.id == "health.bill_deadlines"]
    with time_machine.travel(moment):
        assert scheduler.run_job(app, job) is not None


def _bill(hospital: Http, citizen: Http, *amounts: int) -> dict[str, Any]:
    code = citizen.call("GET", "/api/v1/health/checkin-code", 200)["code"]
    visit = hospital.call("POST", "/api/v1/health/visits", 201, json={"checkin_code": code})
    assert visit["eligible"] is True
    items = [{"code": "C", "description": "care", "quantity": 1, "unit_price": a} for a in amounts]
    hospital.call(
        "POST", f"/api/v1/health/visits/{visit['id']}/charges", 201, json={"items": items}
    )
    return hospital.call("POST", f"/api/v1/health/visits/{visit['id']}/close", 201)


def test_the_issue_done_when_over_http(app, live_server, make_account, admin, commission):
    anyone = Http(live_server)
    admin_http = anyone.login(admin.user.email, "correct-horse-battery")
    # a citizen with a score of 600 joins pay-later
    anyone.call(
        "POST",
        "/api/v1/auth/register",
        201,
        json={"email": "min@example.kr", "password": "a-long-password", "name": "Min"},
    )
    citizen = anyone.login("min@example.kr", "a-long-password")
    me = citizen.call("GET", "/api/v1/auth/me", 200)
    admin_http.call(
        "POST",
        "/api/v1/civic/credit/events",
        201,
        json={"user_id": me["id"], "delta": 100, "reason": "volunteering", "agency": "City"},
    )
    assert citizen.call("GET", "/api/v1/civic/credit", 200)["score"] == 600
    card = citizen.call(
        "POST", "/api/v1/payments/methods", 201, json={"payment_method": "pm_card_visa", **CONSENT}
    )
    citizen.call("PUT", "/api/v1/health/face", 200, files=_photo("obama"), data={"consent": "true"})
    terms = citizen.call("GET", "/api/v1/health/credit-line/terms", 200)
    line = citizen.call(
        "POST", "/api/v1/health/credit-line", 201, json={"terms_version": terms["version"]}
    )
    assert (line["status"], line["limit"]) == ("active", 1_000_000) and terms["version"] == TERMS

    # a hospital posts a visit with the check-in code, adds charges, closes it
    org = admin_http.call(
        "POST",
        "/api/v1/admin/organisations",
        201,
        json={"name": "Hangzhou First", "kind": "hospital"},
    )
    key = admin_http.call("POST", f"/api/v1/admin/organisations/{org['id']}/api-keys", 201, json={})
    hospital = Http(live_server, {"X-API-Key": key["api_key"]})
    first = _bill(hospital, citizen, 35_000, 7_000)
    assert first["total"] == 42_000

    # the citizen settles with a matching photo, refused with another person's or a replayed one
    settle = "/api/v1/health/settlements"
    assert citizen.call("POST", settle, 403, files=_photo("biden"))["error"] == "face_mismatch"
    assert citizen.call("POST", settle, 422, files=_photo("obama"))["error"] == "face_replayed"
    paid = citizen.call("POST", settle, 201, files=_photo("obama2"))
    assert paid["status"] == "succeeded" and paid["bill_ids"] == [first["id"]]
    assert hospital.call("GET", f"/api/v1/health/bills/{first['id']}", 200)["status"] == "settled"

    # a second bill left past its deadline is charged automatically
    second = _bill(hospital, citizen, 20_000)
    _sweep(app, datetime.fromisoformat(second["deadline"]) + timedelta(minutes=1))
    assert hospital.call("GET", f"/api/v1/health/bills/{second['id']}", 200)["status"] == "settled"

    # a failed automatic charge suspends the line and lowers the score
    citizen.call("DELETE", f"/api/v1/payments/methods/{card['id']}", 204)
    citizen.call(
        "POST",
        "/api/v1/payments/methods",
        201,
        json={"payment_method": "pm_card_chargeCustomerFail", **CONSENT},
    )
    third = _bill(hospital, citizen, 15_000)
    _sweep(app, datetime.fromisoformat(third["deadline"]) + timedelta(minutes=1))
    assert citizen.call("GET", "/api/v1/health/credit-line", 200)["status"] == "suspended"
    assert citizen.call("GET", "/api/v1/civic/credit", 200)["score"] == 600 - 40
    inbox = citizen.call("GET", "/api/v1/me/notifications", 200)
    assert any(n["kind"] == "health_bill_overdue" for n in inbox)

    # the dashboard and its page show the day's figures
    board = anyone.login(commission.user.email, "correct-horse-battery")
    figures = board.call("GET", "/api/v1/health/dashboard", 200)
    assert (figures["visits"], figures["pay_later_visits"], figures["pay_later_patients"]) == (
        3,
        3,
        1,
    )
    assert figures["usage_ratio"] == 1.0
    assert figures["hospitals"][0]["name"] == "Hangzhou First"
    page = requests.get(f"{live_server}/dashboard/health", timeout=10)
    assert page.status_code == 200 and "Pay after treatment" in page.text
