"""The officials' side: the queue, claim, request information, the citizen's answer, approval
and rejection; another department's official; the overdue sweep; 3-D Secure and late payments."""

from datetime import timedelta

import pytest
import requests
import time_machine
from sqlalchemy import text

from civic import jobs
from civic.models import Application
from core import db
from core.audit.models import AuditEntry
from core.clock import utcnow
from core.inbox.models import Notification
from payments import service as payments
from tests.civic.conftest import (
    APPLICATIONS,
    GOOD_ANSWERS,
    PDF,
    QUEUE,
    SERVICES,
    answer,
    inbox_titles,
    names,
    passport_service,
    pothole_service,
    stored_files,
    submit,
)
from tests.conftest import count_rows
from tests.payments.conftest import signed_event


def test_an_official_asks_for_information_the_citizen_answers_and_the_official_approves(
    app, citizen, official, publish
):
    publish(passport_service(fee=None))
    created = submit(citizen).get_json()
    url = f"{APPLICATIONS}/{created['id']}"

    queued = official.api.get(QUEUE)
    assert [a["id"] for a in queued] == [created["id"]]
    assert official.api.get(url)["applicant"]["name"] == "Test citizen"

    claimed = official.api.post(f"{url}/claim", expected=200)
    assert claimed["status"] == "in_review"
    official.api.post(f"{url}/claim", expected=409)
    asked = official.api.post(
        f"{url}/request-info", {"note": "Please add the police report."}, expected=200
    )
    assert (asked["status"], asked["status_note"]) == (
        "needs_info",
        "Please add the police report.",
    )

    answered = answer(
        citizen,
        created["id"],
        {"pages": 48},
        {"police_report": (PDF, "report.pdf")},
        note="Attached.",
    )
    assert answered["status"] == "in_review"
    assert answered["answers"] == {**GOOD_ANSWERS, "pages": 48}
    assert [d["code"] for d in answered["documents"]] == ["photo", "police_report"]

    approved = official.api.post(f"{url}/approve", {"note": "All in order."}, expected=200)
    assert approved["status"] == "approved" and approved["certificate"] is not None
    assert approved["decided_at"] is not None

    timeline = citizen.api.get(url)["timeline"]
    assert [(t["to_status"], t["by"], t["note"]) for t in timeline] == [
        ("submitted", "citizen", None),
        ("in_review", "official", None),
        ("needs_info", "official", "Please add the police report."),
        ("in_review", "citizen", "Attached."),
        ("approved", "official", "All in order."),
    ]
    assert inbox_titles(citizen) == [
        "Application approved",
        "Application in review",
        "More information needed",
        "Application in review",
        "Application received",
    ]
    with app.app_context():
        actions = [
            e.action
            for e in db.session.query(AuditEntry)
            .filter_by(object_id=created["id"])
            .order_by(AuditEntry.at)
        ]
    assert actions == [
        "application.claimed",
        "application.info_requested",
        "application.approved",
    ]


def test_an_official_rejects_with_a_reason(citizen, official, publish):
    publish(passport_service(fee=None))
    created = submit(citizen).get_json()
    url = f"{APPLICATIONS}/{created['id']}"
    official.api.post(f"{url}/claim", expected=200)
    official.api.post(f"{url}/reject", {}, expected=422)
    rejected = official.api.post(f"{url}/reject", {"reason": "Photo unclear."}, expected=200)
    assert (rejected["status"], rejected["status_note"]) == ("rejected", "Photo unclear.")
    assert rejected["certificate"] is None
    citizen.api.get(f"{url}/certificate", expected=404)
    assert inbox_titles(citizen)[0] == "Application rejected"


def test_a_step_out_of_order_is_409_and_writes_nothing(app, citizen, official, publish):
    publish(passport_service(fee=None))
    created = submit(citizen).get_json()
    url = f"{APPLICATIONS}/{created['id']}"
    before = count_rows(app)
    official.api.post(f"{url}/approve", {}, expected=409)
    official.api.post(f"{url}/request-info", {"note": "?"}, expected=409)
    answer(citizen, created["id"], {"pages": 30}, expected=409)
    assert count_rows(app) == before


def test_bad_answers_to_a_request_for_information_write_nothing(app, citizen, official, publish):
    publish(passport_service(fee=None))
    created = submit(citizen).get_json()
    url = f"{APPLICATIONS}/{created['id']}"
    official.api.post(f"{url}/claim", expected=200)
    official.api.post(f"{url}/request-info", {"note": "Pages?"}, expected=200)
    before, files = count_rows(app), stored_files(app)
    error = answer(
        citizen,
        created["id"],
        {"pages": 500},
        {"police_report": (b"GIF89a", "r.pdf")},
        expected=422,
    )
    assert set(error["errors"]["form"]) == {"answers.pages", "documents.police_report"}
    answer(
        citizen, created["id"], files={"police_report": (PDF + bytes(5000), "r.pdf")}, expected=413
    )
    assert count_rows(app) == before
    assert stored_files(app) == files


def test_another_departments_official_gets_404_and_writes_nothing(
    app, citizen, roads_official, publish
):
    publish(passport_service(fee=None))
    created = submit(citizen).get_json()
    url = f"{APPLICATIONS}/{created['id']}"
    before = count_rows(app)
    roads_official.api.get(url, expected=404)
    roads_official.api.get(f"{url}/documents/photo", expected=404)
    for step, body in (
        ("claim", None),
        ("request-info", {"note": "?"}),
        ("approve", {}),
        ("reject", {"reason": "no"}),
    ):
        roads_official.api.post(f"{url}/{step}", body, expected=404)
    assert roads_official.api.get(QUEUE) == []
    assert count_rows(app) == before


def test_citizens_cannot_act_as_officials(citizen, publish):
    publish(passport_service(fee=None))
    created = submit(citizen).get_json()
    citizen.api.post(f"{APPLICATIONS}/{created['id']}/claim", expected=403)
    citizen.api.get(QUEUE, expected=403)


def test_the_queue_is_oldest_first_and_filters_by_status_and_overdue(
    app, citizen, official, publish
):
    publish(passport_service(fee=None))
    publish(pothole_service(code="ROAD-1"))
    first = submit(citizen).get_json()["id"]
    second = submit(citizen).get_json()["id"]
    submit(citizen, service="ROAD-1", answers={"size": "small"}, files={})  # another department
    assert [a["id"] for a in official.api.get(QUEUE)] == [first, second]
    official.api.post(f"{APPLICATIONS}/{second}/claim", expected=200)
    assert [a["id"] for a in official.api.get(f"{QUEUE}?status=in_review")] == [second]
    assert official.api.get(f"{QUEUE}?overdue=true") == []
    assert len(official.api.get(f"{QUEUE}?overdue=false")) == 2
    with app.app_context():
        row = db.session.get(Application, first)
        assert row is not None
        row.deadline_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    overdue = official.api.get(f"{QUEUE}?overdue=true")
    assert [(a["id"], a["overdue"]) for a in overdue] == [(first, True)]


def test_the_overdue_sweep_tells_the_departments_officials_once(
    app, citizen, official, make_account, roads_official, publish
):
    second_official = make_account("official", department="CIVIL-REG")
    publish(passport_service(fee=None))
    created = submit(citizen).get_json()
    with app.app_context():
        with time_machine.travel(utcnow() + timedelta(days=4)):
            assert jobs.flag_overdue() == 0
        with time_machine.travel(utcnow() + timedelta(days=6)):
            assert jobs.flag_overdue() == 1
            assert jobs.flag_overdue() == 0
        notified = {
            n.user_id: n.title
            for n in db.session.query(Notification).filter_by(kind="civic.application")
            if n.user_id != citizen.user.id
        }
    assert notified == {
        official.user.id: "Application overdue",
        second_official.user.id: "Application overdue",
    }
    assert created["status"] == "submitted"
    assert inbox_titles(citizen) == ["Application received"]  # the citizen is not told


def _authenticate_and_send_webhook(client, localstripe, client_secret):
    intent_id = client_secret.split("_secret_")[0]
    answered = requests.post(
        f"{localstripe.url}/v1/payment_intents/{intent_id}/_authenticate",
        data={"client_secret": client_secret, "success": "true"},
        auth=("sk_test_local", ""),
        timeout=10,
    )
    assert answered.status_code == 200, answered.text
    payload, signature = signed_event(
        "payment_intent.succeeded",
        {"id": intent_id, "object": "payment_intent"},
        event_id="evt_3ds",
    )
    client.request(
        "POST",
        "/api/v1/payments/webhooks/stripe",
        200,
        data=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    )


def test_a_card_needing_3d_secure_gets_the_client_secret_and_the_webhook_completes_it(
    app, client, citizen, publish, stripe_server, card_needing_3ds
):
    publish(passport_service())
    method = card_needing_3ds()
    response = submit(citizen, payment_method=method, expected=202)
    body = response.get_json()
    assert body["status"] == "awaiting_payment"
    assert body["fee"]["payment_status"] == "requires_action"
    assert body["client_secret"].startswith("pi_")
    assert citizen.api.get(f"{APPLICATIONS}/{body['id']}")["client_secret"] is None

    _authenticate_and_send_webhook(client, stripe_server, body["client_secret"])
    paid = citizen.api.get(f"{APPLICATIONS}/{body['id']}")
    assert paid["status"] == "submitted" and paid["fee"]["payment_status"] == "succeeded"
    assert inbox_titles(citizen) == ["Application received"]


def test_a_payment_completing_after_the_citizen_cancelled_is_refunded(
    app, client, citizen, publish, stripe_server, card_needing_3ds
):
    publish(passport_service())
    method = card_needing_3ds()
    body = submit(citizen, payment_method=method, expected=202).get_json()
    citizen.api.post(f"{APPLICATIONS}/{body['id']}/cancel", expected=200)
    _authenticate_and_send_webhook(client, stripe_server, body["client_secret"])
    after = citizen.api.get(f"{APPLICATIONS}/{body['id']}")
    assert after["status"] == "cancelled"
    assert after["fee"]["payment_status"] == "refunded"
    with app.app_context():
        assert payments.balance("civic_application", body["id"]) == {"KRW": 0}


@pytest.mark.postgresql_only
def test_a_second_sweeper_skips_an_application_the_first_one_holds(app, citizen, publish):
    publish(passport_service(fee=None))
    created = submit(citizen).get_json()
    with app.app_context():
        row = db.session.get(Application, created["id"])
        assert row is not None
        row.deadline_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
        holder = db.engine().connect()
        holder.execute(
            text("SELECT id FROM civic_applications WHERE id = :id FOR UPDATE"),
            {"id": created["id"]},
        )
        try:
            assert jobs.flag_overdue() == 0  # held elsewhere: skipped, not waited for
        finally:
            holder.rollback()
            holder.close()
        assert jobs.flag_overdue() == 1


def test_an_application_keeps_the_version_it_was_submitted_under(admin, citizen, official, publish):
    publish(passport_service(fee=None))
    created = submit(citizen).get_json()
    assert created["service"]["version"] == 1
    extra = {"code": "extra", "label": names("추가", "Extra", "附加"), "datatype": "string"}
    fields = [*passport_service()["fields"], {**extra, "required": True}]
    admin.api.request("PATCH", SERVICES + "/PASSPORT-REISSUE", 200, json={"fields": fields})
    assert admin.api.post(f"{SERVICES}/PASSPORT-REISSUE/publish", expected=200)["version"] == 2

    url = f"{APPLICATIONS}/{created['id']}"
    assert citizen.api.get(url)["service"]["version"] == 1
    official.api.post(f"{url}/claim", expected=200)
    official.api.post(f"{url}/request-info", {"note": "Once more."}, expected=200)
    # Answered against version 1's form: version 2's new required field is not asked for.
    assert answer(citizen, created["id"], {"pages": 32})["status"] == "in_review"
    # A new application is checked against version 2.
    refused = submit(citizen, expected=422).get_json()
    assert "answers.extra" in refused["errors"]["form"]
