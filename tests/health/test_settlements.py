"""Settling by face: one payment for the chosen bills, and what the app is told otherwise."""

import io
from datetime import timedelta

import time_machine
from sqlalchemy import select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from core import db
from core.clock import utcnow
from core.inbox.models import Notification
from payments import service as payments
from payments.models import Payment
from tests.conftest import count_rows
from tests.health.conftest import H, bill, photo, settle


def _payments_of(app, user_id):
    with app.app_context():
        return db.session.scalars(select(Payment).where(Payment.user_id == user_id)).all()


def test_one_payment_settles_every_open_bill_and_each_hospital_sees_it(app, member, make_hospital):
    account = member()
    first, second = make_hospital("North Clinic"), make_hospital("South Hospital")
    one, two = bill(first, account, 12_000), bill(second, account, 30_000, 8_000)
    settlement = settle(account, "obama2")
    assert settlement["status"] == "succeeded" and settlement["amount"] == 50_000
    assert settlement["bill_ids"] == sorted([one["id"], two["id"]])
    (payment,) = _payments_of(app, account.user.id)
    assert (payment.amount, payment.purpose, payment.reference) == (
        50_000,
        "health_settlement",
        settlement["id"],
    )
    assert payment.off_session is False and payment.status == "succeeded"
    for hospital, issued in ((first, one), (second, two)):
        shown = hospital.api.get(f"{H}/bills/{issued['id']}")
        assert shown["status"] == "settled" and shown["settled_at"]
    mine = account.api.get(f"{H}/bills")
    assert {b["status"] for b in mine} == {"settled"}
    assert {b["hospital"]["name"] for b in mine} == {"North Clinic", "South Hospital"}
    assert account.api.get(f"{H}/credit-line")["used"] == 0
    assert account.api.get(f"{H}/settlements/{settlement['id']}") == settlement


def test_only_the_named_bills_are_settled(member, hospital):
    account = member()
    one, two = bill(hospital, account, 1_000), bill(hospital, account, 2_000)
    settlement = settle(account, "obama2", bill_ids=[two["id"]])
    assert settlement["bill_ids"] == [two["id"]] and settlement["amount"] == 2_000
    statuses = {b["id"]: b["status"] for b in account.api.get(f"{H}/bills")}
    assert statuses == {one["id"]: "open", two["id"]: "settled"}


def test_another_citizens_bill_is_404_and_nothing_to_settle_is_409(member, hospital):
    owner, other = member(), member()
    theirs = bill(hospital, owner, 1_000)
    settle(other, "obama2", expected=404, bill_ids=[theirs["id"]])
    other.api.get(f"{H}/bills/{theirs['id']}", expected=404)
    assert settle(other, "obama2", expected=409)["message"] == "There is nothing to settle."
    settle(owner, "obama2")
    refused = settle(owner, "obama3", expected=409, bill_ids=[theirs["id"]])
    assert "not open" in refused["message"]


def test_a_nul_in_the_bill_ids_is_422_naming_the_field_not_a_database_error(member, hospital):
    owner = member()
    mine = bill(hospital, owner, 1_000)
    refused = settle(owner, "obama2", expected=422, bill_ids=[mine["id"] + "\x00"])
    assert "bill_ids" in refused["errors"]["form_and_files"]
    owner.api.get(f"{H}/bills/{mine['id']}")  # still there, still open


def test_a_declined_card_is_402_and_the_bills_stay_open(app, member, hospital):
    account = member(card="pm_card_chargeCustomerFail")
    issued = bill(hospital, account, 10_000)
    declined = settle(account, "obama2", expected=402)
    assert declined["error"] == "card_declined" and declined["settlement_id"]
    shown = account.api.get(f"{H}/bills/{issued['id']}")
    assert (shown["status"], shown["in_payment"]) == ("open", False)
    assert account.api.get(f"{H}/settlements/{declined['settlement_id']}")["status"] == "failed"
    assert account.api.get(f"{H}/credit-line")["status"] == "active"  # not suspended by this


def test_a_card_asking_for_3d_secure_is_202_with_the_client_secret_then_settles(
    app, member, hospital, saved_card_needing_3ds
):
    account = member()
    issued = bill(hospital, account, 10_000)
    waiting = settle(account, "obama2", expected=202)
    assert waiting["status"] == "requires_action"
    assert waiting["client_secret"].startswith("pi_") and "_secret_" in waiting["client_secret"]
    shown = account.api.get(f"{H}/bills/{issued['id']}")
    assert (shown["status"], shown["in_payment"]) == ("open", True)
    settle(account, "obama3", expected=409)  # already being paid
    with app.app_context():
        client = payments.gateway()._client
        intent_id = payments.get_payment(waiting["payment_id"]).stripe_payment_intent_id
    client.raw_request(  # the app finishes 3-D Secure with Stripe (localstripe's hook)
        "post",
        f"/v1/payment_intents/{intent_id}/_authenticate",
        client_secret=waiting["client_secret"],
        success="true",
    )
    with app.app_context(), time_machine.travel(utcnow() + timedelta(minutes=10)):
        payments.reconcile()
    assert account.api.get(f"{H}/bills/{issued['id']}")["status"] == "settled"
    assert account.api.get(f"{H}/settlements/{waiting['id']}")["status"] == "succeeded"


def test_a_retry_with_the_same_idempotency_key_replays_the_settlement(app, member, hospital):
    account = member()
    bill(hospital, account, 10_000)
    boundary, body = encode_multipart(
        MultiDict({"image": FileStorage(io.BytesIO(photo("obama2")), "selfie.jpg")}),
        boundary="retry-boundary",
    )
    send = {
        "data": body,
        "content_type": f"multipart/form-data; boundary={boundary}",
        "headers": {"Idempotency-Key": "settle-1"},
    }
    first = account.api.request("POST", f"{H}/settlements", 201, **send).get_json()
    before = count_rows(app)
    replayed = account.api.request("POST", f"{H}/settlements", 201, **send)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.get_json() == first
    assert len(_payments_of(app, account.user.id)) == 1
    assert count_rows(app)["payments"] == before["payments"]


def test_paying_tells_the_citizen(app, member, hospital):
    account = member()
    bill(hospital, account, 10_000)
    settle(account, "obama2")
    with app.app_context():
        kinds = db.session.scalars(
            select(Notification.kind).where(Notification.user_id == account.user.id)
        ).all()
    assert "health_bills_settled" in kinds


def test_the_outcome_is_applied_once_however_often_it_is_delivered(app, member, hospital):
    from health.service import settlements

    account = member()
    bill(hospital, account, 10_000)
    done = settle(account, "obama2")
    with app.app_context():
        for _ in range(2):
            settlements.apply_success(done["id"], done["payment_id"])
            settlements.apply_failure(done["id"], done["payment_id"], "late", "too late")
            db.session.commit()
        kinds = db.session.scalars(
            select(Notification.kind).where(Notification.user_id == account.user.id)
        ).all()
    assert kinds.count("health_bills_settled") == 1
    assert account.api.get(f"{H}/settlements/{done['id']}")["status"] == "succeeded"


def test_without_a_saved_card_the_refusal_says_why_and_the_bills_stay_open(member, hospital):
    account = member()
    issued = bill(hospital, account, 10_000)
    (card,) = account.api.get("/api/v1/payments/methods")
    account.api.request("DELETE", f"/api/v1/payments/methods/{card['id']}", 204)
    refused = settle(account, "obama2", expected=402)
    assert refused["error"] == "payment_refused" and "card" in refused["message"]
    shown = account.api.get(f"{H}/bills/{issued['id']}")
    assert (shown["status"], shown["in_payment"]) == ("open", False)
