"""Applications: submitting answers, documents and the fee; paying later; cancelling; what a
refused submission leaves behind (nothing)."""

from datetime import timedelta

import pytest
import time_machine

from civic import jobs
from core import db
from core.clock import utcnow
from payments import service as payments
from tests.civic.conftest import (
    APPLICATIONS,
    GOOD_ANSWERS,
    JPEG,
    PDF,
    PNG,
    inbox_titles,
    passport_service,
    save_card,
    stored_files,
    submit,
)
from tests.conftest import count_rows

FREE = {"fee": None}


@pytest.fixture
def passport(publish):
    return publish(passport_service())


@pytest.fixture
def free_passport(publish):
    return publish(passport_service(**FREE))


def balance(app, application_id):
    with app.app_context():
        return payments.balance("civic_application", application_id)


def test_a_citizen_applies_with_a_file_and_pays_with_the_saved_card(
    app, citizen, passport, stripe_server
):
    save_card(citizen)
    created = submit(citizen, files={"photo": (PNG, "me.png"), "police_report": (PDF, "r.pdf")})
    body = created.get_json()
    assert body["status"] == "submitted"
    assert body["service"] == {"code": "PASSPORT-REISSUE", "version": 1, "name": "Passport reissue"}
    assert body["fee"]["payment_status"] == "succeeded" and body["fee"]["attempts"] == 1
    assert body["answers"] == GOOD_ANSWERS
    assert [(d["code"], d["content_type"], d["size"]) for d in body["documents"]] == [
        ("photo", "image/png", len(PNG)),
        ("police_report", "application/pdf", len(PDF)),
    ]
    assert [(t["from_status"], t["to_status"]) for t in body["timeline"]] == [
        (None, "awaiting_payment"),
        ("awaiting_payment", "submitted"),
    ]
    assert balance(app, body["id"]) == {"KRW": 53000}
    assert inbox_titles(citizen) == ["Application received"]
    assert len(stored_files(app)) == 2
    assert citizen.api.get(f"{APPLICATIONS}/{body['id']}")["status"] == "submitted"
    assert [a["id"] for a in citizen.api.get(APPLICATIONS)] == [body["id"]]


def test_the_deadline_is_the_submission_plus_the_processing_days(citizen, free_passport):
    body = submit(citizen).get_json()
    assert body["fee"] is None and body["status"] == "submitted"
    submitted = body["submitted_at"]
    deadline = body["deadline_at"]
    from datetime import datetime

    gap = datetime.fromisoformat(deadline) - datetime.fromisoformat(submitted)
    assert gap == timedelta(days=5)


BAD_ANSWERS = {
    "reason": "stolen",
    "pages": 100,
    "birth_date": "01/04/1990",
    "email": "not-an-email",
    "phone": "call me",
    "urgent": "yes",
    "lost_at": "2026-01-01T10:00:00",
    "extras": ["courier", "pigeon"],
    "passport_no": "123",
    "notes": 42,
    "full_name": "x" * 51,
    "favourite_colour": "blue",
}


def test_bad_answers_are_each_named_and_nothing_is_written(app, citizen, free_passport):
    before = count_rows(app)
    error = submit(citizen, answers=BAD_ANSWERS, expected=422).get_json()
    named = set(error["errors"]["form"])
    assert named == {f"answers.{code}" for code in BAD_ANSWERS}
    assert count_rows(app) == before
    assert stored_files(app) == []


def test_a_missing_required_answer_is_named(citizen, free_passport):
    error = submit(citizen, answers={"reason": "lost"}, expected=422).get_json()
    assert set(error["errors"]["form"]) == {"answers.full_name", "answers.birth_date"}


@pytest.mark.parametrize("answers", ["[1, 2]", "{not json", '"text"'])
def test_answers_must_be_a_json_object(citizen, free_passport, answers):
    error = submit(citizen, answers=answers, expected=422).get_json()
    assert "answers" in error["errors"]["form"]


def test_an_oversized_file_is_413_and_nothing_is_written(app, citizen, free_passport):
    before = count_rows(app)
    big = PNG + bytes(3000)  # the photo's max_bytes is 2048
    error = submit(citizen, files={"photo": (big, "me.png")}, expected=413).get_json()
    assert "documents.photo" in error["errors"]["files"]
    assert count_rows(app) == before
    assert stored_files(app) == []


def test_a_body_over_the_upload_ceiling_is_413(app, citizen, free_passport):
    app.config["CIVIC_UPLOAD_MAX_BYTES"] = 1000
    try:
        submit(citizen, files={"photo": (PNG + bytes(70_000), "me.png")}, expected=413)
    finally:
        app.config["CIVIC_UPLOAD_MAX_BYTES"] = 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("files", "at"),
    [
        ({"photo": (PDF, "me.png")}, "documents.photo"),  # a PDF named .png
        ({"photo": (b"<html>hello</html>", "me.jpg")}, "documents.photo"),
        ({"photo": (JPEG, "me.jpg"), "police_report": (PNG, "r.pdf")}, "documents.police_report"),
        ({}, "documents.photo"),  # required
        ({"photo": (PNG, "me.png"), "selfie": (PNG, "s.png")}, "documents.selfie"),  # unknown
    ],
)
def test_a_wrong_missing_or_unknown_document_is_422_and_nothing_is_written(
    app, citizen, free_passport, files, at
):
    before = count_rows(app)
    error = submit(citizen, files=files, expected=422).get_json()
    assert at in error["errors"]["form"]
    assert count_rows(app) == before
    assert stored_files(app) == []


def test_a_draft_or_unknown_service_cannot_be_applied_for(admin, citizen, departments):
    admin.api.post("/api/v1/civic/services", passport_service(), expected=201)
    error = submit(citizen, expected=422).get_json()
    assert "service" in error["errors"]["form"]
    submit(citizen, service="NOPE", expected=422)


def test_a_replayed_submission_gets_the_first_answer_and_writes_nothing_more(
    app, citizen, passport, stripe_server
):
    save_card(citizen)
    headers = {"Idempotency-Key": "apply-1"}
    first = submit(citizen, headers=headers)
    after_first = count_rows(app)
    again = submit(citizen, headers=headers)  # a new multipart boundary, the same parts
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert count_rows(app) == after_first
    # the same key with other answers is refused
    other = {**GOOD_ANSWERS, "full_name": "Someone Else"}
    submit(citizen, answers=other, headers=headers, expected=422)
    assert count_rows(app) == after_first


def test_the_same_file_twice_is_stored_once(app, citizen, free_passport):
    submit(citizen)
    submit(citizen)
    assert len(stored_files(app)) == 1


def test_a_declined_card_leaves_the_application_awaiting_payment_with_the_reason(
    app, citizen, passport, stripe_server
):
    save_card(citizen, "pm_card_chargeCustomerFail")
    body = submit(citizen).get_json()
    assert body["status"] == "awaiting_payment"
    assert body["fee"]["payment_status"] == "failed"
    assert "declined" in body["fee"]["failure"]
    assert body["expires_at"] is not None
    assert inbox_titles(citizen) == ["Payment needed"]

    paid = citizen.api.post(
        f"{APPLICATIONS}/{body['id']}/pay", {"payment_method": "pm_card_visa"}, expected=201
    )
    assert paid["status"] == "submitted" and paid["fee"]["attempts"] == 2
    assert paid["expires_at"] is None
    assert balance(app, body["id"]) == {"KRW": 53000}
    citizen.api.post(f"{APPLICATIONS}/{body['id']}/pay", {}, expected=409)


def test_without_a_card_the_application_waits_and_can_be_paid_later(
    app, citizen, passport, stripe_server
):
    body = submit(citizen).get_json()
    assert (body["status"], body["fee"]["payment_status"]) == ("awaiting_payment", "failed")
    assert body["fee"]["attempts"] == 0 and "card" in body["fee"]["failure"]
    save_card(citizen)
    paid = citizen.api.post(f"{APPLICATIONS}/{body['id']}/pay", expected=201)
    assert paid["status"] == "submitted"


def test_an_unpaid_application_expires_after_the_setting_hours(
    app, citizen, passport, stripe_server
):
    body = submit(citizen).get_json()
    with app.app_context():
        with time_machine.travel(utcnow() + timedelta(hours=71)):
            assert jobs.expire_unpaid() == 0
        with time_machine.travel(utcnow() + timedelta(hours=73)):
            assert jobs.expire_unpaid() == 1
            assert jobs.expire_unpaid() == 0
    expired = citizen.api.get(f"{APPLICATIONS}/{body['id']}")
    assert expired["status"] == "expired"
    assert expired["timeline"][-1]["by"] == "system"
    assert inbox_titles(citizen)[0] == "Application expired"
    citizen.api.post(
        f"{APPLICATIONS}/{body['id']}/pay", {"payment_method": "pm_card_visa"}, expected=409
    )


def test_cancelling_before_review_refunds_the_fee(app, citizen, passport, stripe_server):
    save_card(citizen)
    body = submit(citizen).get_json()
    cancelled = citizen.api.post(f"{APPLICATIONS}/{body['id']}/cancel", expected=200)
    assert cancelled["status"] == "cancelled"
    assert cancelled["fee"]["payment_status"] == "refunded"
    assert balance(app, body["id"]) == {"KRW": 0}
    assert inbox_titles(citizen)[0] == "Application cancelled"
    citizen.api.post(f"{APPLICATIONS}/{body['id']}/cancel", expected=409)


def test_an_application_in_review_cannot_be_cancelled(citizen, official, free_passport):
    body = submit(citizen).get_json()
    official.api.post(f"{APPLICATIONS}/{body['id']}/claim", expected=200)
    citizen.api.post(f"{APPLICATIONS}/{body['id']}/cancel", expected=409)


def test_a_citizen_sees_only_their_own_applications(app, citizen, make_account, free_passport):
    body = submit(citizen).get_json()
    other = make_account("citizen")
    before = count_rows(app)
    other.api.get(f"{APPLICATIONS}/{body['id']}", expected=404)
    other.api.get(f"{APPLICATIONS}/{body['id']}/documents/photo", expected=404)
    other.api.post(f"{APPLICATIONS}/{body['id']}/cancel", expected=404)
    other.api.post(f"{APPLICATIONS}/{body['id']}/pay", {}, expected=404)
    assert other.api.get(APPLICATIONS) == []
    assert count_rows(app) == before


def test_documents_are_served_to_the_applicant_and_the_departments_officials(
    citizen, official, free_passport
):
    body = submit(citizen).get_json()
    for account in (citizen, official):
        response = account.api.request("GET", f"{APPLICATIONS}/{body['id']}/documents/photo", 200)
        assert response.data == PNG
        assert response.mimetype == "image/png"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "attachment" in response.headers["Content-Disposition"]
    citizen.api.get(f"{APPLICATIONS}/{body['id']}/documents/police_report", expected=404)


def test_a_failed_commit_leaves_no_stored_file(app, citizen, free_passport, monkeypatch):
    from civic.service import applications

    def broken(*_args, **_kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(applications.documents, "rows", broken)
    with pytest.raises(RuntimeError):
        submit(citizen)
    assert stored_files(app) == []
    with app.app_context():
        db.session.rollback()
