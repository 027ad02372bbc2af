"""A payment waiting for 3-D Secure is canceled after PAYMENT_REQUIRES_ACTION_HOURS, at Stripe
and here, instead of being polled forever."""

from datetime import timedelta

import time_machine

from core.clock import utcnow
from payments import service


def _on_session(app, citizen, payment_method, key="visit-1-attempt-1"):
    with app.app_context():
        return service.charge(
            citizen.user.id,
            5000,
            "KRW",
            "hospital_bill",
            "visit-1",
            payment_method=payment_method,
            idempotency_key=key,
        )


def _stripe_status(stripe_server, intent_id):
    (intent,) = [i for i in stripe_server.list("payment_intents") if i["id"] == intent_id]
    return intent["status"]


def test_a_payment_left_requiring_action_is_canceled_after_the_setting_hours(
    app, citizen, card_needing_3ds, stripe_server, outcomes
):
    payment = _on_session(app, citizen, card_needing_3ds())
    assert payment.status == "requires_action"
    hours = app.config["PAYMENT_REQUIRES_ACTION_HOURS"]
    with app.app_context():
        with time_machine.travel(payment.created_at + timedelta(hours=hours, minutes=-1)):
            assert service.expire_requires_action() == 0  # not yet
            service.reconcile()  # polling meanwhile keeps it waiting
        assert service.get_payment(payment.id).status == "requires_action"
        with time_machine.travel(payment.created_at + timedelta(hours=hours, minutes=1)):
            assert service.expire_requires_action() == 1
            assert service.expire_requires_action() == 0  # settled rows are not touched again
        expired = service.get_payment(payment.id)
        assert (expired.status, expired.failure_code) == ("canceled", "expired")
    assert _stripe_status(stripe_server, payment.stripe_payment_intent_id) == "canceled"
    assert [(o.payment_id, o.status) for o in outcomes["failed"]] == [(payment.id, "canceled")]


def test_the_expiry_follows_the_setting(app, citizen, card_needing_3ds):
    payment = _on_session(app, citizen, card_needing_3ds())
    app.config["PAYMENT_REQUIRES_ACTION_HOURS"] = 2
    try:
        with app.app_context(), time_machine.travel(utcnow() + timedelta(hours=2, minutes=1)):
            assert service.expire_requires_action() == 1
    finally:
        app.config["PAYMENT_REQUIRES_ACTION_HOURS"] = 24
    with app.app_context():
        assert service.get_payment(payment.id).status == "canceled"


def test_a_payment_finished_at_stripe_meanwhile_is_taken_as_succeeded_not_canceled(
    app, citizen, card_needing_3ds, stripe_server, outcomes
):
    payment = _on_session(app, citizen, card_needing_3ds())
    with app.app_context():
        client = service.gateway()._client
    intent = client.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    client.raw_request(  # the citizen finishes 3-D Secure (localstripe's test hook)
        "post",
        f"/v1/payment_intents/{intent.id}/_authenticate",
        client_secret=intent.client_secret,
        success="true",
    )
    with app.app_context(), time_machine.travel(utcnow() + timedelta(hours=25)):
        assert service.expire_requires_action() == 1
        assert service.get_payment(payment.id).status == "succeeded"
    assert _stripe_status(stripe_server, payment.stripe_payment_intent_id) == "succeeded"
    assert outcomes["failed"] == [] and len(outcomes["succeeded"]) == 1


def test_the_expiry_sweep_is_a_scheduled_job(app):
    from core.scheduler import jobs_of

    assert "payments.expire_requires_action" in {job.id for job in jobs_of(app)}
