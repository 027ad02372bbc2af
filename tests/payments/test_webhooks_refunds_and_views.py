"""Stripe's webhook, refunds, the ledger, and what citizens may see."""

import logging
import time
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from core import db
from core.clock import utcnow
from payments import service
from payments.gateway import IntentResult
from payments.models import LedgerEntry, WebhookEvent
from payments.service import refunds
from tests.conftest import WEBHOOK_SECRET, count_rows
from tests.payments.conftest import CONSENT, METHODS, signed_event

WEBHOOK = "/api/v1/payments/webhooks/stripe"


@pytest.fixture
def paid(app, citizen, save_card):
    """A succeeded KRW 5,000 payment of the citizen."""
    save_card(citizen)
    with app.app_context():
        return service.charge(
            citizen.user.id, 5000, "KRW", "parking", "res-1", idempotency_key="res-1-attempt-1"
        )


def _post_event(client, payload, signature, expected=200):
    return client.request(
        "POST",
        WEBHOOK,
        expected,
        data=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    ).get_json()


def _events(app):
    with app.app_context():
        return db.session.scalars(select(WebhookEvent)).all()


# --- saved cards -------------------------------------------------------------------------------


def test_saving_a_card_records_the_consent_and_lists_it(citizen, save_card):
    card = save_card(citizen)
    assert (card["brand"], card["last4"], card["consent_version"]) == ("visa", "4242", "2026-11")
    assert card["consented_at"].endswith("+00:00")
    assert [c["id"] for c in citizen.api.get(METHODS)] == [card["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"payment_method": "pm_card_visa", "consent_text_version": "2026-11"},
            "consent_off_session",
        ),
        (
            {
                "payment_method": "pm_card_visa",
                "consent_off_session": False,
                "consent_text_version": "2026-11",
            },
            "consent_off_session",
        ),
        (
            {
                "payment_method": "pm_card_visa",
                "consent_off_session": True,
                "consent_text_version": "2019-01",
            },
            "consent_text_version",
        ),
        ({"payment_method": "4242424242424242", **CONSENT}, "payment_method"),
    ],
)
def test_a_card_is_not_saved_without_explicit_consent_to_the_current_text(
    app, citizen, body, field
):
    before = count_rows(app)
    error = citizen.api.post(METHODS, body, expected=422)
    assert field in error["errors"]["json"]
    assert count_rows(app) == before


def test_a_citizen_removes_their_card_but_not_anothers(citizen, make_account, save_card):
    card = save_card(citizen)
    other = make_account("citizen")
    other.api.request("DELETE", f"{METHODS}/{card['id']}", 404)
    citizen.api.request("DELETE", f"{METHODS}/{card['id']}", 204)
    assert citizen.api.get(METHODS) == []


# --- webhooks ----------------------------------------------------------------------------------


def test_a_duplicated_webhook_is_processed_once(app, client, paid):
    payload, signature = signed_event(
        "payment_intent.succeeded",
        {"id": paid.stripe_payment_intent_id, "object": "payment_intent"},
        event_id="evt_1",
    )
    assert _post_event(client, payload, signature) == {"received": True, "duplicate": False}
    assert _post_event(client, payload, signature) == {"received": True, "duplicate": True}
    (event,) = _events(app)
    assert event.processed_at is not None


def test_an_out_of_order_failure_after_success_does_not_regress_the_payment(app, client, paid):
    payload, signature = signed_event(
        "payment_intent.payment_failed",
        {"id": paid.stripe_payment_intent_id, "object": "payment_intent"},
        event_id="evt_late",
    )
    _post_event(client, payload, signature)
    stale = IntentResult(
        paid.stripe_payment_intent_id,
        "requires_payment_method",
        5000,
        0,
        "krw",
        "card_declined",
        "no",
        None,
        {},
    )
    with app.app_context():
        payment = service.get_payment(paid.id)
        service.apply_intent(payment, stale)
        payment = service.get_payment(paid.id)
        assert (payment.status, payment.failure_code) == ("succeeded", None)
        assert service.balance("parking", "res-1") == {"KRW": 5000}


def test_a_webhook_with_a_bad_signature_is_400_logged_and_writes_nothing(app, client, paid, caplog):
    payload, signature = signed_event(
        "payment_intent.succeeded", {"id": "pi_x"}, event_id="evt_bad"
    )
    before = count_rows(app)
    with caplog.at_level(logging.WARNING, logger="civic.payments"):
        error = _post_event(client, payload + b" ", signature, expected=400)
    assert error["message"] == "Invalid Stripe signature or payload."
    assert any("bad signature" in r.getMessage() for r in caplog.records)
    _post_event(client, payload, "t=1,v1=deadbeef", expected=400)
    assert count_rows(app) == before


def test_a_webhook_older_than_five_minutes_is_refused(client, paid):
    payload, signature = signed_event(
        "payment_intent.succeeded", {"id": "pi_x"}, event_id="evt_old", at=int(time.time()) - 301
    )
    _post_event(client, payload, signature, expected=400)


def test_a_webhook_that_cannot_reach_stripe_is_kept_for_the_sweep(app, client, paid, stripe_outage):
    stripe_outage("retrieve_payment_intent")
    payload, signature = signed_event(
        "payment_intent.succeeded",
        {"id": paid.stripe_payment_intent_id, "object": "payment_intent"},
        event_id="evt_2",
    )
    _post_event(client, payload, signature)
    assert _events(app)[0].processed_at is None


def test_localstripe_delivers_signed_webhooks_that_the_app_accepts(
    app, citizen, save_card, live_server, stripe_server
):
    stripe_server.register_webhook("civic", f"{live_server}{WEBHOOK}", WEBHOOK_SECRET)
    save_card(citizen)
    with app.app_context():
        service.charge(citizen.user.id, 5000, "KRW", "parking", "res-9", idempotency_key="res-9")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _all_processed(app, "payment_intent.succeeded"):
        time.sleep(0.2)
    assert "payment_intent.succeeded" in _types(app)  # customer.created comes too
    assert all(e.processed_at is not None for e in _events(app))


def _all_processed(app, wanted: str) -> bool:
    """``wanted`` has arrived and every event received so far is processed (an event is stored,
    then processed: in between it is there, unprocessed)."""
    events = _events(app)
    return wanted in {e.type for e in events} and all(e.processed_at for e in events)


def _types(app):
    return {e.type for e in _events(app)}


# --- refunds -----------------------------------------------------------------------------------


def test_partial_then_full_refunds_never_exceed_the_payment_and_match_stripe(
    app, admin, paid, stripe_server, outcomes
):
    url = f"/api/v1/payments/{paid.id}/refunds"
    first = admin.api.post(url, {"amount": 2000, "reason": "left early"}, expected=201)
    assert (first["status"], first["amount"]) == ("succeeded", 2000)
    error = admin.api.post(url, {"amount": 3001, "reason": "too much"}, expected=422)
    assert error["errors"]["json"]["amount"] == ["Refundable amount is ₩3,000."]
    rest = admin.api.post(url, {"reason": "cancelled"}, expected=201)
    assert rest["amount"] == 3000
    admin.api.post(url, {"amount": 1, "reason": "again"}, expected=422)

    detail = admin.api.get(f"/api/v1/payments/{paid.id}")
    assert detail["amount_refunded"] == 5000 and [r["amount"] for r in detail["refunds"]] == [
        2000,
        3000,
    ]
    with app.app_context():
        assert service.balance("parking", "res-1") == {"KRW": 0}
    at_stripe = [
        r
        for r in stripe_server.list("refunds")
        if r["payment_intent"] == paid.stripe_payment_intent_id
    ]
    assert sum(int(r["amount"]) for r in at_stripe) == 5000
    assert [o.refunded_amount for o in outcomes["refunded"]] == [2000, 3000]
    trail = admin.api.get(f"/api/v1/admin/audit?object_id={paid.id}")
    assert {e["action"] for e in trail} == {"payment.refund_requested"}


def test_a_refund_while_another_is_in_progress_is_409(app, admin, paid, stripe_outage):
    stripe_outage("create_refund")
    url = f"/api/v1/payments/{paid.id}/refunds"
    assert admin.api.post(url, {"amount": 1000, "reason": "a"}, expected=201)["status"] == "pending"
    error = admin.api.post(url, {"amount": 1000, "reason": "b"}, expected=409)
    assert "in progress" in error["message"]


def test_a_refund_replayed_with_its_idempotency_key_refunds_once(admin, paid, stripe_server):
    url = f"/api/v1/payments/{paid.id}/refunds"
    headers = {"Idempotency-Key": "refund-once"}
    first = admin.api.request(
        "POST", url, 201, json={"amount": 1000, "reason": "a"}, headers=headers
    )
    again = admin.api.request(
        "POST", url, 201, json={"amount": 1000, "reason": "a"}, headers=headers
    )
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(stripe_server.list("refunds")) == 1


def test_citizens_cannot_refund(citizen, paid):
    citizen.api.post(f"/api/v1/payments/{paid.id}/refunds", {"reason": "me"}, expected=403)


# --- citizen views -----------------------------------------------------------------------------


def test_a_citizen_sees_their_payments_and_not_anothers(app, citizen, make_account, paid):
    history = citizen.api.request("GET", "/api/v1/payments?page_size=10", 200)
    assert [p["id"] for p in history.get_json()] == [paid.id]
    assert "X-Pagination" in history.headers
    assert citizen.api.get(f"/api/v1/payments/{paid.id}")["status"] == "succeeded"

    other = make_account("citizen")
    assert other.api.get("/api/v1/payments") == []
    error = other.api.get(f"/api/v1/payments/{paid.id}", expected=404)
    assert error["message"] == "No such payment."


def test_an_organisation_cannot_read_payments(client, make_organisation, paid):
    _, key = make_organisation("hospital")
    client.as_api_key(key).get(f"/api/v1/payments/{paid.id}", expected=403)


def test_the_ledger_is_written_once_per_charge(app, paid):
    with app.app_context():
        intent = service.gateway().retrieve_payment_intent(paid.stripe_payment_intent_id)
        service.apply_intent(service.get_payment(paid.id), intent)
        assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 1


def test_a_refund_left_pending_by_an_outage_is_settled_by_the_sweep(
    app, admin, paid, monkeypatch, outcomes, stripe_outage
):
    stripe_outage("create_refund")
    url = f"/api/v1/payments/{paid.id}/refunds"
    stuck = admin.api.post(url, {"amount": 1000, "reason": "outage"}, expected=201)
    monkeypatch.undo()
    with app.app_context(), time_machine.travel(utcnow() + timedelta(minutes=6)):
        assert service.reconcile() == 1
    # it never reached Stripe, so it failed and no longer blocks a new refund
    assert admin.api.get(f"/api/v1/payments/{paid.id}")["refunds"][0]["status"] == "failed"
    assert stuck["status"] == "pending"
    assert (
        admin.api.post(url, {"amount": 1000, "reason": "retry"}, expected=201)["status"]
        == "succeeded"
    )
    assert [o.refunded_amount for o in outcomes["refunded"]] == [1000]


def test_a_refund_made_at_stripe_before_a_crash_is_found_by_the_sweep(
    app, admin, paid, monkeypatch, stripe_server
):
    def crash(*_a, **_kw):
        raise SystemExit("killed between Stripe and our commit")

    monkeypatch.setattr(refunds, "apply_refund", crash)
    with app.app_context(), pytest.raises(SystemExit):
        service.refund(paid.id, 1500, "crash test")
    monkeypatch.undo()
    with app.app_context(), time_machine.travel(utcnow() + timedelta(minutes=6)):
        assert service.reconcile() == 1
        assert service.balance("parking", "res-1") == {"KRW": 3500}
    assert len(stripe_server.list("refunds")) == 1


def test_an_event_for_an_intent_stripe_does_not_know_is_recorded_not_retried(app, client, paid):
    with app.app_context():
        payment = service.get_payment(paid.id)
        payment.stripe_payment_intent_id = "pi_unknown_to_stripe"
        db.session.commit()
    payload, signature = signed_event(
        "payment_intent.succeeded",
        {"id": "pi_unknown_to_stripe", "object": "payment_intent"},
        event_id="evt_unknown",
    )
    _post_event(client, payload, signature)
    (event,) = _events(app)
    assert event.processed_at is not None


@pytest.mark.parametrize(
    ("event_id", "event_type", "object_id"),
    [
        ("evt_nul\u0000", "payment_intent.succeeded", "pi_1"),
        ("evt_" + "a" * 296, "payment_intent.succeeded", "pi_1"),
        ("evt_ok", "payment_intent." + "x" * 200, "pi_1"),
        ("evt_ok", "payment_intent.succeeded", "pi_" + "b" * 297),
        ("evt_ok", "payment_intent.succeeded", "pi_nul\u0000"),
        ("evt_ok", "payment_intent.succeeded\u0000", "pi_1"),
        ("evt with spaces", "payment_intent.succeeded", "pi_1"),
    ],
    ids=["nul-id", "300-char-id", "long-type", "long-object-id", "nul-object", "nul-type", "space"],
)
def test_a_signed_event_with_a_malformed_or_oversize_field_is_400_and_writes_nothing(
    app, client, event_id, event_type, object_id
):
    payload, signature = signed_event(
        event_type, {"id": object_id, "object": "payment_intent"}, event_id=event_id
    )
    before = count_rows(app)
    error = _post_event(client, payload, signature, expected=400)
    assert (error["code"], error["status"]) == (400, "Bad Request")
    assert error["message"] == "Invalid Stripe signature or payload."
    assert count_rows(app) == before
