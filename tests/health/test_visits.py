"""At the hospital: check-in codes, visits, charges, the limit, corrections, bills."""

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from core import db
from core.audit.models import AuditEntry
from core.clock import utcnow
from tests.conftest import count_rows
from tests.health.conftest import (
    TERMS,
    H,
    bill,
    checkin,
    close,
    enrol,
    item,
    post_charges,
    save_card,
    settle,
    visit,
)


def test_a_checkin_code_is_short_lived_signed_and_works_once(member, hospital):
    account = member()
    issued = account.api.get(f"{H}/checkin-code")
    expires = issued["expires_at"]
    assert len(issued["code"]) < 40 and "." in issued["code"]
    token, signature = issued["code"].split(".")
    forged = f"{token}.{'A' * len(signature)}"
    hospital.api.post(f"{H}/visits", {"checkin_code": forged}, expected=422)
    hospital.api.post(f"{H}/visits", {"checkin_code": issued["code"]}, expected=201)
    used = hospital.api.post(f"{H}/visits", {"checkin_code": issued["code"]}, expected=422)
    assert "already been used" in used["errors"]["json"]["checkin_code"][0]
    assert expires > utcnow().isoformat()


def test_an_expired_checkin_code_is_refused(app, member, hospital):
    account = member()
    code = checkin(account)
    with time_machine.travel(
        utcnow() + timedelta(minutes=app.config["CHECKIN_CODE_MINUTES"], seconds=1)
    ):
        refused = hospital.api.post(f"{H}/visits", {"checkin_code": code}, expected=422)
    assert "expired" in refused["errors"]["json"]["checkin_code"][0]


def test_a_visit_of_a_member_is_pay_later_with_the_available_limit(member, hospital):
    account = member(score=600)
    opened = visit(hospital, account, department="Cardiology")
    assert (opened["eligible"], opened["reason"], opened["available"]) == (True, None, 1_000_000)
    assert opened["status"] == "open" and opened["department"] == "Cardiology"
    assert opened["patient_name"] == "Test citizen"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("below_threshold", "below_threshold"),
        ("never_joined", "no_credit_line"),
        ("face_erased", "face_not_enrolled"),
        ("limit_used", "limit_exhausted"),
    ],
)
def test_an_ineligible_visit_is_recorded_with_the_reason(
    setup, reason, member, make_account, set_score, hospital
):
    if setup == "never_joined":
        account = make_account("citizen")
        set_score(account, 700)
    else:
        account = member(score=560)
    if setup == "below_threshold":
        set_score(account, 549)
    if setup == "face_erased":
        account.api.request("DELETE", f"{H}/face", 204)
    if setup == "limit_used":
        bill(hospital, account, 300_000)
    recorded = visit(hospital, account)
    assert (recorded["eligible"], recorded["reason"]) == (False, reason)
    assert recorded["status"] == "closed"
    refused = post_charges(hospital, recorded["id"], item(1000), expected=409)
    assert "desk" in refused["message"]
    close(hospital, recorded["id"], expected=409)


def test_charges_over_the_limit_are_refused_with_what_remains(app, member, hospital):
    account = member(score=560)  # limit ₩300,000
    opened = visit(hospital, account)
    post_charges(hospital, opened["id"], item(100_000, 2))
    before = count_rows(app)
    refused = post_charges(hospital, opened["id"], item(60_000, 2), expected=409)
    assert (refused["error"], refused["available"], refused["currency"]) == (
        "limit_exceeded",
        100_000,
        "KRW",
    )
    assert count_rows(app) == before
    posted = post_charges(hospital, opened["id"], item(100_000), item(0, code="NOTE"))
    assert posted["total"] == 300_000 and len(posted["charges"]) == 3


def test_the_limit_counts_what_is_owed_at_every_hospital(member, make_hospital):
    account = member(score=560)
    first, second = make_hospital(), make_hospital()
    bill(first, account, 250_000)
    opened = visit(second, account)
    assert opened["available"] == 50_000
    post_charges(second, opened["id"], item(50_001), expected=409)


def test_closing_issues_the_bill_due_after_the_settlement_window(app, member, hospital):
    account = member()
    opened = visit(hospital, account)
    post_charges(hospital, opened["id"], item(30_000), item(5_000, 3, code="LAB"))
    before = utcnow()
    issued = close(hospital, opened["id"])
    assert issued["bill_id"] == issued["id"] and issued["status"] == "open"
    assert issued["total"] == 45_000 and [i["amount"] for i in issued["items"]] == [30_000, 15_000]
    window = timedelta(minutes=app.config["SETTLEMENT_WINDOW_MINUTES"])
    assert window == timedelta(hours=48)
    deadline = issued["deadline"]
    assert (before + window).isoformat() <= deadline <= (utcnow() + window).isoformat()
    close(hospital, opened["id"], expected=409)
    post_charges(hospital, opened["id"], item(1), expected=409)
    shown = hospital.api.get(f"{H}/visits/{opened['id']}")
    assert (shown["status"], shown["bill_id"]) == ("closed", issued["id"])


def test_the_window_is_a_setting(app, member, hospital):
    app.config["SETTLEMENT_WINDOW_MINUTES"] = 72 * 60
    try:
        issued = bill(hospital, member(), 1000)
    finally:
        app.config["SETTLEMENT_WINDOW_MINUTES"] = 2880
    hours = (
        utcnow().fromisoformat(issued["deadline"]) - utcnow().fromisoformat(issued["issued_at"])
    ) / timedelta(hours=1)
    assert hours == 72


def test_a_hospital_sees_only_its_own_visits_and_bills(member, make_hospital):
    account = member()
    mine, theirs = make_hospital(), make_hospital()
    issued = bill(mine, account, 10_000)
    theirs.api.get(f"{H}/visits/{issued['visit_id']}", expected=404)
    theirs.api.get(f"{H}/bills/{issued['id']}", expected=404)
    post_charges(theirs, issued["visit_id"], item(1), expected=404)
    close(theirs, issued["visit_id"], expected=404)
    assert theirs.api.get(f"{H}/visits") == []
    assert [v["id"] for v in mine.api.get(f"{H}/visits")] == [issued["visit_id"]]
    assert mine.api.get(f"{H}/bills/{issued['id']}")["total"] == 10_000


def test_visits_are_listed_by_status(member, hospital):
    account = member()
    opened = visit(hospital, account)
    closed = bill(hospital, account, 1000)
    assert [v["id"] for v in hospital.api.get(f"{H}/visits?status=open")] == [opened["id"]]
    assert [v["id"] for v in hospital.api.get(f"{H}/visits?status=closed")] == [closed["visit_id"]]
    hospital.api.get(f"{H}/visits?status=lost", expected=422)


def test_a_visit_in_the_future_is_refused(member, hospital):
    later = (utcnow() + timedelta(hours=1)).isoformat()
    visit(hospital, member(), expected=422, visited_at=later)


def test_a_correction_before_settlement_is_audited_and_changes_the_bill(app, member, hospital):
    account = member()
    issued = bill(hospital, account, 10_000, 20_000)
    first, second = issued["items"]
    corrected = hospital.api.request(
        "PATCH",
        f"{H}/visits/{issued['visit_id']}/charges/{first['id']}",
        200,
        json={"quantity": 2, "reason": "two sessions, not one"},
    ).get_json()
    assert corrected["total"] == 40_000
    voided = hospital.api.post(
        f"{H}/visits/{issued['visit_id']}/charges/{second['id']}/void",
        {"reason": "posted to the wrong patient"},
        expected=200,
    )
    assert voided["total"] == 20_000
    shown = account.api.get(f"{H}/bills/{issued['id']}")
    assert shown["total"] == 20_000 and [i["id"] for i in shown["items"]] == [first["id"]]
    with app.app_context():
        entries = db.session.scalars(
            select(AuditEntry).where(AuditEntry.object_id.in_([first["id"], second["id"]]))
        ).all()
        changes = {e.action: (e.actor, e.before or {}, e.after or {}) for e in entries}
    actor, before, after = changes["health.charge_corrected"]
    assert (before["quantity"], after["quantity"]) == (1, 2)
    assert after["reason"] == "two sessions, not one"
    actor, before, after = changes["health.charge_voided"]
    assert (before["status"], after["status"]) == ("active", "voided")
    assert actor == f"organisation:{hospital.id}"


def test_voiding_every_line_cancels_the_bill(member, hospital):
    account = member()
    issued = bill(hospital, account, 10_000)
    (line,) = issued["items"]
    hospital.api.post(
        f"{H}/visits/{issued['visit_id']}/charges/{line['id']}/void",
        {"reason": "not treated"},
        expected=200,
    )
    assert hospital.api.get(f"{H}/bills/{issued['id']}")["status"] == "cancelled"
    assert account.api.get(f"{H}/credit-line")["used"] == 0


def test_a_correction_may_not_exceed_the_limit(member, hospital):
    account = member(score=560)
    issued = bill(hospital, account, 100_000)
    (line,) = issued["items"]
    refused = hospital.api.request(
        "PATCH",
        f"{H}/visits/{issued['visit_id']}/charges/{line['id']}",
        409,
        json={"unit_price": 400_000, "reason": "typo"},
    ).get_json()
    assert refused["available"] == 200_000


def test_after_settlement_only_a_refund_changes_a_bill(member, hospital):
    account = member()
    issued = bill(hospital, account, 10_000)
    settle(account, "obama2")
    (line,) = issued["items"]
    hospital.api.post(
        f"{H}/visits/{issued['visit_id']}/charges/{line['id']}/void",
        {"reason": "late"},
        expected=409,
    )
    refund = hospital.api.post(
        f"{H}/bills/{issued['id']}/refunds",
        {"amount": 4_000, "reason": "overcharged"},
        expected=201,
    )
    assert refund["status"] == "succeeded" and refund["amount"] == 4_000
    shown = hospital.api.get(f"{H}/bills/{issued['id']}")
    assert (shown["status"], shown["refunded_amount"]) == ("settled", 4_000)
    hospital.api.post(
        f"{H}/bills/{issued['id']}/refunds", {"amount": 6_001, "reason": "too much"}, expected=422
    )
    rest = hospital.api.post(
        f"{H}/bills/{issued['id']}/refunds", {"reason": "all of it"}, expected=201
    )
    assert rest["amount"] == 6_000
    assert hospital.api.get(f"{H}/bills/{issued['id']}")["status"] == "refunded"


def test_an_open_bill_cannot_be_refunded(member, hospital):
    issued = bill(hospital, member(), 10_000)
    hospital.api.post(f"{H}/bills/{issued['id']}/refunds", {"reason": "x"}, expected=409)


def test_citizens_may_not_post_visits_and_hospitals_may_not_join(citizen, hospital):
    citizen.api.post(f"{H}/visits", {"checkin_code": "x.y"}, expected=403)
    hospital.api.post(f"{H}/credit-line", {"terms_version": TERMS}, expected=403)


def test_a_member_who_saved_a_card_and_enrolled_can_check_in_at_two_hospitals(
    make_account, set_score, make_hospital
):
    account = make_account("citizen")
    set_score(account, 700)
    save_card(account)
    enrol(account)
    account.api.post(f"{H}/credit-line", {"terms_version": TERMS}, expected=201)
    for place in (make_hospital(), make_hospital()):
        assert visit(place, account)["available"] == 2_000_000
