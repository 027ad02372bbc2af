"""Fixtures of the payment tests: a running localstripe, saved cards, signed webhooks."""

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core import db
from payments import service, signals
from payments.gateway import GatewayUnavailable, StripeGateway
from tests.conftest import WEBHOOK_SECRET

METHODS = "/api/v1/payments/methods"
CONSENT = {"consent_off_session": True, "consent_text_version": "2026-11"}


@pytest.fixture(autouse=True)
def _stripe(stripe_server):
    return stripe_server


@pytest.fixture(autouse=True)
def _no_transaction_across_stripe_calls(app, stripe_server, monkeypatch) -> Iterator[None]:
    """Every payments test also checks the rule: no database transaction is open in the
    calling thread while the app waits for Stripe (on SQLite it would hold the write lock)."""
    with app.app_context():
        gateway = service.gateway()
    open_during: list[str] = []

    def guarded(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def check(*args: Any, **kwargs: Any) -> Any:
            if db.session().in_transaction():
                open_during.append(name)
            return call(*args, **kwargs)

        return check

    for name in dir(StripeGateway):
        if not name.startswith("_") and name != "construct_event":
            monkeypatch.setattr(gateway, name, guarded(name, getattr(gateway, name)))
    yield
    assert open_during == [], f"a transaction was open during Stripe calls: {open_during}"


@pytest.fixture
def stripe_outage(app, monkeypatch) -> Callable[[str], None]:
    """``stripe_outage("create_refund")``: that gateway call fails as if Stripe were unreachable,
    until ``monkeypatch.undo()`` or the end of the test."""
    with app.app_context():
        gateway = service.gateway()

    def break_call(method: str) -> None:
        def down(*_args: Any, **_kwargs: Any) -> None:
            raise GatewayUnavailable(f"{method}: connection refused")

        monkeypatch.setattr(gateway, method, down)

    return break_call


@pytest.fixture
def save_card() -> Callable[..., dict[str, Any]]:
    def save(account, payment_method: str = "pm_card_visa") -> dict[str, Any]:
        return account.api.post(
            METHODS, {"payment_method": payment_method, **CONSENT}, expected=201
        )

    return save


@pytest.fixture
def outcomes(app) -> Iterator[dict[str, list[signals.PaymentOutcome]]]:
    """What payments announced (and the outbox delivered) during the test, by outcome."""
    heard: dict[str, list[signals.PaymentOutcome]] = {
        "succeeded": [],
        "failed": [],
        "refunded": [],
        "refund_failed": [],
    }
    wanted = {
        signals.PAYMENT_SUCCEEDED: "succeeded",
        signals.PAYMENT_FAILED: "failed",
        signals.REFUND_SUCCEEDED: "refunded",
        signals.REFUND_FAILED: "refund_failed",
    }
    for outcome, key in wanted.items():
        signals.subscribe(app, outcome, f"test.{key}", heard[key].append)
    yield heard
    for key in wanted.values():
        app.extensions["outbox"].pop(f"test.{key}")


def signed_event(
    event_type: str, obj: dict[str, Any], *, event_id: str, at: int | None = None
) -> tuple[bytes, str]:
    """A Stripe event body and its Stripe-Signature header, signed as Stripe signs."""
    created = at if at is not None else int(time.time())
    payload = json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": created,
            "data": {"object": obj},
        }
    ).encode()
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{created}.".encode() + payload, hashlib.sha256)
    return payload, f"t={created},v1={digest.hexdigest()}"
