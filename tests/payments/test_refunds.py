"""Refunds: a pending row first under a key from the request's Idempotency-Key, so a retry
finds the same refund; and what Stripe later says of a refund (webhook) is reflected."""

import dataclasses
import uuid

import pytest
from sqlalchemy import select

from core import db
from payments import service
from payments.models import LedgerEntry, Refund
from payments.service import refunds
from tests.conftest import count_rows
from tests.payments.conftest import signed_event

WEBHOOK = "/api/v1/payments/webhooks/stripe"


@pytest.fixture
def paid(app, citizen, save_card):
    """A succeeded KRW 5,000 payment of the citizen."""
    save_card(citizen)
    with app.app_context():
        return service.charge(
            citizen.user.id, 5000, "KRW", "parking", "res-1", idempotency_key="res-1-attempt-1"
        )


def _url(payment) -> str:
    return f"/api/v1/payments/{payment.id}/refunds"


def _stripe_refunds(stripe_server, intent_id):
    return [r for r in stripe_server.list("refunds") if r["payment_intent"] == intent_id]


def _ledger(app, payment_id):
    with app.app_context():
        rows = db.session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.payment_id == payment_id)
            .order_by(LedgerEntry.created_at, LedgerEntry.kind)
        ).all()
        return sorted((row.kind, row.amount) for row in rows)


def _post_event(client, event_type, obj, expected=200):
    payload, signature = signed_event(event_type, obj, event_id=f"evt_{uuid.uuid4().hex}")
    return client.request(
        "POST",
        WEBHOOK,
        expected,
        data=payload,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
    ).get_json()


# --- one refund per Idempotency-Key ------------------------------------------------------------


def test_a_retry_after_the_process_died_between_stripe_and_our_commit_finds_the_same_refund(
    app, admin, paid, monkeypatch, stripe_server, outcomes
):
    def crash(*_a, **_kw):
        raise SystemExit("killed between Stripe's answer and our commit")

    monkeypatch.setattr(refunds, "apply_refund", crash)
    body, headers = {"amount": 1000, "reason": "left early"}, {"Idempotency-Key": "refund-1"}
    with pytest.raises(SystemExit):  # the key is released with the dying request
        admin.api.request("POST", _url(paid), 201, json=body, headers=headers)
    monkeypatch.undo()
    retried = admin.api.request("POST", _url(paid), 201, json=body, headers=headers).get_json()
    assert (retried["status"], retried["amount"]) == ("succeeded", 1000)
    detail = admin.api.get(f"/api/v1/payments/{paid.id}")
    assert [r["id"] for r in detail["refunds"]] == [retried["id"]]
    assert detail["amount_refunded"] == 1000
    assert len(_stripe_refunds(stripe_server, paid.stripe_payment_intent_id)) == 1
    assert [o.refund_id for o in outcomes["refunded"]] == [retried["id"]]


def test_a_retry_after_the_key_was_released_returns_the_refund_already_made(
    app, admin, paid, monkeypatch, stripe_server
):
    def fails_after_commit(*_a, **_kw):
        raise RuntimeError("failed after the refund committed")

    monkeypatch.setattr("core.outbox.deliver_ready", fails_after_commit)
    body, headers = {"amount": 1000, "reason": "left early"}, {"Idempotency-Key": "refund-2"}
    with pytest.raises(RuntimeError):  # a 500 (raised here, TESTING): the key is released
        admin.api.request("POST", _url(paid), 500, json=body, headers=headers)
    monkeypatch.undo()
    retried = admin.api.request("POST", _url(paid), 201, json=body, headers=headers).get_json()
    assert retried["status"] == "succeeded"
    assert len(_stripe_refunds(stripe_server, paid.stripe_payment_intent_id)) == 1
    assert admin.api.get(f"/api/v1/payments/{paid.id}")["amount_refunded"] == 1000
    error = admin.api.post(
        _url(paid), {"amount": 2000, "reason": "left early"}, expected=422, headers=headers
    )
    assert "Idempotency-Key" in error["errors"]["headers"]


def test_a_module_refunding_twice_with_one_business_key_refunds_once(
    app, paid, stripe_server, outcomes
):
    with app.app_context():
        first = service.refund(paid.id, None, "reservation cancelled", idempotency_key="res-1")
        again = service.refund(paid.id, None, "reservation cancelled", idempotency_key="res-1")
        assert (again.id, again.status, again.amount) == (first.id, "succeeded", 5000)
    assert len(_stripe_refunds(stripe_server, paid.stripe_payment_intent_id)) == 1
    assert len(outcomes["refunded"]) == 1


def test_two_admins_with_the_same_key_make_two_refunds(app, make_account, paid, stripe_server):
    headers = {"Idempotency-Key": "mine"}
    for admin in (make_account("admin"), make_account("admin")):
        admin.api.post(_url(paid), {"amount": 1000, "reason": "r"}, expected=201, headers=headers)
    assert len(_stripe_refunds(stripe_server, paid.stripe_payment_intent_id)) == 2


def test_without_a_key_a_refund_in_progress_still_blocks_another(app, admin, paid, stripe_outage):
    stripe_outage("create_refund")
    admin.api.post(_url(paid), {"amount": 1000, "reason": "a"}, expected=201)
    admin.api.post(_url(paid), {"amount": 1000, "reason": "b"}, expected=409)


# --- refund events from Stripe's webhook --------------------------------------------------------


def _refunded(admin, paid, amount=2000):
    return admin.api.post(_url(paid), {"amount": amount, "reason": "r"}, expected=201)


def _stripe_refund_id(app, refund_id):
    with app.app_context():
        record = db.session.get(Refund, refund_id)
        assert record is not None
        return record.stripe_refund_id


def _charge_of(app, intent_id):
    with app.app_context():
        client = service.gateway()._client
    charge = client.v1.payment_intents.retrieve(intent_id).latest_charge
    assert charge is not None
    return charge if isinstance(charge, str) else charge.id  # localstripe expands it


def _stripe_says(app, monkeypatch, status):
    """From now on Stripe reports every refund with ``status`` (localstripe's never change)."""
    with app.app_context():
        gateway = service.gateway()
    retrieve, of_charge = gateway.retrieve_refund, gateway.refunds_of_charge
    monkeypatch.setattr(
        gateway,
        "retrieve_refund",
        lambda refund_id: dataclasses.replace(retrieve(refund_id), status=status),
    )
    monkeypatch.setattr(
        gateway,
        "refunds_of_charge",
        lambda charge_id: [dataclasses.replace(r, status=status) for r in of_charge(charge_id)],
    )


@pytest.mark.parametrize(
    "event_type", ["refund.failed", "refund.updated", "charge.refund.updated", "charge.refunded"]
)
def test_a_refund_that_fails_at_stripe_after_succeeding_is_reversed(
    app, client, admin, paid, monkeypatch, outcomes, event_type
):
    refund = _refunded(admin, paid)
    assert refund["status"] == "succeeded"
    _stripe_says(app, monkeypatch, "failed")
    if event_type == "charge.refunded":
        obj = {"id": _charge_of(app, paid.stripe_payment_intent_id), "object": "charge"}
    else:
        obj = {"id": _stripe_refund_id(app, refund["id"]), "object": "refund"}
    _post_event(client, event_type, obj)

    detail = admin.api.get(f"/api/v1/payments/{paid.id}")
    assert detail["amount_refunded"] == 0
    assert [(r["id"], r["status"]) for r in detail["refunds"]] == [(refund["id"], "failed")]
    assert _ledger(app, paid.id) == [("charge", 5000), ("refund", -2000), ("refund_reversal", 2000)]
    with app.app_context():
        assert service.balance("parking", "res-1") == {"KRW": 5000}
    assert [o.refund_id for o in outcomes["refund_failed"]] == [refund["id"]]
    # the same news again changes nothing, and a failed refund no longer blocks a new one
    _post_event(client, event_type, obj)
    assert len(outcomes["refund_failed"]) == 1
    assert _ledger(app, paid.id) == [("charge", 5000), ("refund", -2000), ("refund_reversal", 2000)]


def test_a_stale_event_never_moves_a_refund_back(app, client, admin, paid, monkeypatch, outcomes):
    refund = _refunded(admin, paid)
    stripe_id = _stripe_refund_id(app, refund["id"])
    for stale in ("pending", "succeeded"):
        monkeypatch.undo()
        _stripe_says(app, monkeypatch, stale)
        _post_event(client, "refund.updated", {"id": stripe_id, "object": "refund"})
    detail = admin.api.get(f"/api/v1/payments/{paid.id}")
    assert (detail["amount_refunded"], detail["refunds"][0]["status"]) == (2000, "succeeded")
    assert _ledger(app, paid.id) == [("charge", 5000), ("refund", -2000)]
    assert len(outcomes["refunded"]) == 1 and outcomes["refund_failed"] == []
    monkeypatch.undo()
    _stripe_says(app, monkeypatch, "failed")
    _post_event(client, "refund.failed", {"id": stripe_id, "object": "refund"})
    monkeypatch.undo()  # localstripe still says succeeded: failed stays failed
    _post_event(client, "refund.updated", {"id": stripe_id, "object": "refund"})
    detail = admin.api.get(f"/api/v1/payments/{paid.id}")
    assert (detail["amount_refunded"], detail["refunds"][0]["status"]) == (0, "failed")


def test_a_pending_refund_is_settled_by_its_event_found_by_its_metadata(
    app, client, admin, paid, monkeypatch, outcomes
):
    def crash(*_a, **_kw):
        raise SystemExit("killed between Stripe's answer and our commit")

    monkeypatch.setattr(refunds, "apply_refund", crash)
    with app.app_context(), pytest.raises(SystemExit):
        service.refund(paid.id, 1500, "crash")
    monkeypatch.undo()
    with app.app_context():
        client_ = service.gateway()._client
    (at_stripe,) = client_.v1.refunds.list(params={"payment_intent": paid.stripe_payment_intent_id})
    _post_event(client, "refund.created", {"id": at_stripe.id, "object": "refund"})
    detail = admin.api.get(f"/api/v1/payments/{paid.id}")
    assert (detail["amount_refunded"], detail["refunds"][0]["status"]) == (1500, "succeeded")
    assert [o.refunded_amount for o in outcomes["refunded"]] == [1500]


def test_a_refund_made_in_stripes_dashboard_is_recorded_once(app, client, admin, paid, outcomes):
    with app.app_context():
        client_ = service.gateway()._client
    made = client_.v1.refunds.create(
        params={"payment_intent": paid.stripe_payment_intent_id, "amount": 1500}
    )
    charge = {"id": _charge_of(app, paid.stripe_payment_intent_id), "object": "charge"}
    _post_event(client, "charge.refunded", charge)
    _post_event(client, "refund.created", {"id": made.id, "object": "refund"})
    detail = admin.api.get(f"/api/v1/payments/{paid.id}")
    assert detail["amount_refunded"] == 1500
    assert [(r["amount"], r["status"]) for r in detail["refunds"]] == [(1500, "succeeded")]
    assert _ledger(app, paid.id) == [("charge", 5000), ("refund", -1500)]
    assert [o.refunded_amount for o in outcomes["refunded"]] == [1500]


def test_a_refund_event_of_a_payment_that_is_not_ours_is_recorded_and_ignored(app, client, paid):
    with app.app_context():
        gateway = service.gateway()
        customer = gateway.create_customer(
            email="x@example.test", name="X", citizen_id="x", idempotency_key="x"
        )
        other = gateway.create_payment_intent(
            amount=700,
            currency="KRW",
            customer_id=customer,
            payment_method="pm_card_visa",
            off_session=True,
            idempotency_key="other",
            metadata={},
        )
        made = gateway.create_refund(
            payment_intent_id=other.id, amount=700, idempotency_key="r", metadata={}
        )
    before = count_rows(app)
    _post_event(client, "refund.created", {"id": made.id, "object": "refund"})
    after = count_rows(app)
    assert after["payment_refunds"] == before["payment_refunds"]
    assert after["payment_webhook_events"] == before["payment_webhook_events"] + 1
