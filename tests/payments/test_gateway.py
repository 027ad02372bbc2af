"""The Stripe adapter and the localstripe runner, on their own, against a real localstripe."""

import hashlib
import hmac
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import stripe

import payments.gateway as adapter
from devtools.localstripe import LocalStripe, free_port
from payments.gateway import (
    AuthenticationRequired,
    GatewayUnavailable,
    IntentResult,
    InvalidWebhook,
    PaymentDeclined,
    SearchIncomplete,
    StripeGateway,
    StripeRejected,
    WebhookEvent,
)
from tests.conftest import THREE_D_SECURE_CARD

API_VERSION = "2026-10-28.endive"
KEY = "sk_test_gateway"
SECRET = "whsec_gateway_test"


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    """This module's own localstripe (overrides the suite's, so one process serves here)."""
    with LocalStripe() as server:
        yield server


@pytest.fixture
def gateway(localstripe: LocalStripe) -> Iterator[StripeGateway]:
    yield StripeGateway(KEY, localstripe.url, API_VERSION, SECRET, max_network_retries=0)
    localstripe.clear()


@pytest.fixture
def customer(gateway: StripeGateway) -> str:
    return gateway.create_customer(
        email="ada@example.test", name="Ada", citizen_id="citizen-1", idempotency_key="cus-1"
    )


def _charge(
    gateway: StripeGateway,
    customer: str,
    payment_method: str = "pm_card_visa",
    *,
    amount: int = 5000,
    currency: str = "KRW",
    off_session: bool = True,
    payment_id: str = "payment-1",
) -> IntentResult:
    return gateway.create_payment_intent(
        amount=amount,
        currency=currency,
        customer_id=customer,
        payment_method=payment_method,
        off_session=off_session,
        idempotency_key=f"pay-{payment_id}",
        metadata={"payment_id": payment_id},
    )


def _card(localstripe: LocalStripe, number: str) -> str:
    """A card PaymentMethod with this test number (localstripe takes raw numbers)."""
    client = stripe.StripeClient(KEY, base_addresses={"api": localstripe.url})
    return client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    ).id


def _sign(payload: bytes, at: int, secret: str = SECRET) -> str:
    """A Stripe-Signature header, computed as Stripe computes it."""
    digest = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256)
    return f"t={at},v1={digest.hexdigest()}"


def _event_body(event_id: str = "evt_1", created: int | None = None) -> bytes:
    obj = {"id": "pi_123", "object": "payment_intent", "status": "succeeded"}
    event = {
        "id": event_id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": created or int(time.time()),
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


# Customers and saved cards


def test_a_customer_is_created_with_the_citizen_id_in_its_metadata(gateway, localstripe):
    customer_id = gateway.create_customer(
        email="ada@example.test", name="Ada", citizen_id="citizen-7", idempotency_key="cus-7"
    )
    (stored,) = localstripe.list("customers")
    assert customer_id.startswith("cus_") and stored["id"] == customer_id
    assert (stored["email"], stored["metadata"]) == (
        "ada@example.test",
        {"citizen_id": "citizen-7"},
    )


def test_a_setup_intent_saves_a_visa_card_for_off_session_use(gateway, localstripe, customer):
    setup = gateway.create_setup_intent(
        customer_id=customer, payment_method="pm_card_visa", idempotency_key="setup-1"
    )
    assert setup.id.startswith("seti_") and setup.status == "succeeded"
    assert setup.payment_method_id.startswith("pm_") and setup.payment_method_id != "pm_card_visa"
    assert (setup.brand, setup.last4) == ("visa", "4242")
    (stored,) = localstripe.list("setup_intents")
    assert (stored["usage"], stored["customer"]) == ("off_session", customer)


def test_a_card_is_attached_to_a_customer_and_detached_again(gateway, customer):
    setup = gateway.create_setup_intent(
        customer_id=customer, payment_method="pm_card_visa", idempotency_key="setup-1"
    )
    assert setup.customer_id is None  # localstripe leaves it loose; Stripe attaches it
    assert gateway.retrieve_payment_method(setup.payment_method_id).customer_id is None
    gateway.attach_payment_method(setup.payment_method_id, customer)
    method = gateway.retrieve_payment_method(setup.payment_method_id)
    assert (method.id, method.customer_id) == (setup.payment_method_id, customer)
    gateway.detach_payment_method(setup.payment_method_id)
    assert gateway.retrieve_payment_method(setup.payment_method_id).customer_id is None


def test_an_unknown_payment_method_is_rejected(gateway):
    with pytest.raises(StripeRejected):
        gateway.retrieve_payment_method("pm_does_not_exist")


def test_a_saved_card_can_then_be_charged_off_session(gateway, customer):
    setup = gateway.create_setup_intent(
        customer_id=customer, payment_method="pm_card_visa", idempotency_key="setup-1"
    )
    assert _charge(gateway, customer, setup.payment_method_id).status == "succeeded"


def test_a_card_declined_when_saved_raises_payment_declined(gateway, customer):
    with pytest.raises(PaymentDeclined) as declined:
        gateway.create_setup_intent(
            customer_id=customer,
            payment_method="pm_card_visa_chargeDeclined",
            idempotency_key="setup-1",
        )
    assert declined.value.code == "card_declined"


def test_a_card_needing_authentication_cannot_be_saved_off_session(gateway, localstripe, customer):
    with pytest.raises(AuthenticationRequired):
        gateway.create_setup_intent(
            customer_id=customer,
            payment_method=_card(localstripe, THREE_D_SECURE_CARD),
            idempotency_key="setup-1",
        )


def test_detaching_a_card_is_quiet_whether_or_not_it_exists(gateway, customer):
    setup = gateway.create_setup_intent(
        customer_id=customer, payment_method="pm_card_visa", idempotency_key="setup-1"
    )
    gateway.detach_payment_method(setup.payment_method_id)
    gateway.detach_payment_method("pm_gone")


# Charges


@pytest.mark.parametrize(("currency", "amount"), [("KRW", 5000), ("USD", 1000)])
def test_a_visa_charge_succeeds_for_its_amount_in_its_currency(gateway, customer, currency, amount):
    intent = _charge(gateway, customer, amount=amount, currency=currency)
    assert intent.id.startswith("pi_") and intent.status == "succeeded"
    assert (intent.amount, intent.amount_received) == (amount, amount)
    assert intent.currency == currency.lower()
    assert intent.metadata == {"payment_id": "payment-1"}
    assert (intent.last_error_code, intent.decline_code) == (None, None)


def test_retrieving_an_intent_returns_what_creating_it_returned(gateway, customer):
    created = _charge(gateway, customer)
    assert gateway.retrieve_payment_intent(created.id) == created


def test_a_declined_card_raises_payment_declined_with_its_code(gateway, customer):
    with pytest.raises(PaymentDeclined) as declined:
        _charge(gateway, customer, "pm_card_chargeCustomerFail")
    error = declined.value
    assert not isinstance(error, AuthenticationRequired)
    assert error.code == "card_declined" and "declined" in error.message
    # localstripe names only the failed charge; the gateway finds the intent behind it.
    assert error.intent_id is not None and error.intent_id.startswith("pi_")


def test_a_declined_intent_retrieved_later_shows_the_same_failure(gateway, customer):
    with pytest.raises(PaymentDeclined) as declined:
        _charge(gateway, customer, "pm_card_chargeCustomerFail", off_session=False)
    assert declined.value.intent_id is not None
    intent = gateway.retrieve_payment_intent(declined.value.intent_id)
    assert (intent.status, intent.last_error_code) == ("requires_payment_method", "card_declined")
    assert intent.amount_received == 0


def test_an_off_session_charge_on_a_card_needing_3ds_raises_authentication_required(
    gateway, localstripe, customer
):
    card = _card(localstripe, THREE_D_SECURE_CARD)
    with pytest.raises(AuthenticationRequired) as needed:
        _charge(gateway, customer, card, off_session=True)
    assert needed.value.code == "authentication_required"
    assert needed.value.intent_id is not None


def test_an_on_session_charge_on_a_card_needing_3ds_waits_for_the_customer(
    gateway, localstripe, customer
):
    card = _card(localstripe, THREE_D_SECURE_CARD)
    assert _charge(gateway, customer, card, off_session=False).status == "requires_action"


def test_an_intent_waiting_for_the_customer_can_be_canceled_but_a_succeeded_one_cannot(
    gateway, localstripe, customer
):
    waiting = _charge(gateway, customer, _card(localstripe, THREE_D_SECURE_CARD), off_session=False)
    canceled = gateway.cancel_payment_intent(waiting.id, idempotency_key="cancel-1")
    assert (canceled.id, canceled.status) == (waiting.id, "canceled")
    paid = _charge(gateway, customer, payment_id="payment-2")
    with pytest.raises(StripeRejected):
        gateway.cancel_payment_intent(paid.id, idempotency_key="cancel-2")


def test_stripes_authentication_required_error_keeps_the_intent_id(gateway, monkeypatch):
    def needs_3ds(*_a, **_kw):
        body = {"error": {"code": "authentication_required", "payment_intent": {"id": "pi_3ds"}}}
        raise stripe.CardError("Authenticate", None, "authentication_required", json_body=body)

    monkeypatch.setattr(gateway._client.v1.payment_intents, "create", needs_3ds)
    with pytest.raises(AuthenticationRequired) as error:
        _charge(gateway, "cus_x", "pm_x")
    assert (error.value.code, error.value.intent_id) == ("authentication_required", "pi_3ds")


def test_a_charge_for_an_unknown_customer_is_rejected(gateway):
    with pytest.raises(StripeRejected) as rejected:
        _charge(gateway, "cus_unknown")
    assert not isinstance(rejected.value, PaymentDeclined)


def test_an_unknown_intent_is_rejected(gateway):
    with pytest.raises(StripeRejected):
        gateway.retrieve_payment_intent("pi_unknown")


# Finding an intent whose id we never stored


def test_an_intent_is_found_by_its_metadata_and_an_unknown_value_finds_none(gateway, customer):
    _charge(gateway, customer, payment_id="payment-1")
    wanted = _charge(gateway, customer, payment_id="payment-2")
    assert gateway.find_payment_intent_by_metadata("payment_id", "payment-2") == wanted
    assert gateway.find_payment_intent_by_metadata("payment_id", "payment-3") is None


def test_the_metadata_search_pages_through_the_list(gateway, customer, monkeypatch):
    monkeypatch.setattr(adapter, "_SEARCH_PAGE", 1)
    ids = [_charge(gateway, customer, payment_id=f"payment-{n}").id for n in range(3)]
    found = [
        gateway.find_payment_intent_by_metadata("payment_id", f"payment-{n}") for n in range(3)
    ]
    assert [intent.id for intent in found if intent] == ids


def test_a_metadata_search_cut_off_by_its_bound_is_not_taken_for_absence(
    gateway, customer, monkeypatch
):
    monkeypatch.setattr(adapter, "_SEARCH_PAGE", 1)
    monkeypatch.setattr(adapter, "_SEARCH_MAX_PAGES", 1)
    _charge(gateway, customer, payment_id="payment-1")
    _charge(gateway, customer, payment_id="payment-2")
    with pytest.raises(SearchIncomplete):
        gateway.find_payment_intent_by_metadata("payment_id", "payment-unknown")


# Refunds


def test_a_payment_is_refunded_in_part_then_in_full(gateway, customer):
    intent = _charge(gateway, customer, amount=5000)
    first = gateway.create_refund(
        payment_intent_id=intent.id,
        amount=2000,
        idempotency_key="refund-1",
        metadata={"refund_id": "refund-1"},
    )
    rest = gateway.create_refund(
        payment_intent_id=intent.id,
        amount=3000,
        reason=None,
        idempotency_key="refund-2",
        metadata={"refund_id": "refund-2"},
    )
    assert (first.status, first.amount, rest.status, rest.amount) == (
        "succeeded",
        2000,
        "succeeded",
        3000,
    )
    assert gateway.retrieve_refund(first.id) == first
    assert gateway.find_refund(intent.id, "refund-2") == rest
    assert gateway.find_refund(intent.id, "refund-unknown") is None
    assert (first.payment_intent_id, first.metadata) == (intent.id, {"refund_id": "refund-1"})
    charge_id = first.charge_id
    assert charge_id is not None and gateway.intent_of_charge(charge_id) == intent.id
    assert sorted(r.id for r in gateway.refunds_of_charge(charge_id)) == sorted([first.id, rest.id])


def test_a_refund_reason_stripe_does_not_know_is_refused_before_calling_it(gateway):
    with pytest.raises(ValueError, match="requested_by_customer"):
        gateway.create_refund(
            payment_intent_id="pi_x",
            amount=1,
            reason="changed their mind",
            idempotency_key="refund-1",
            metadata={},
        )


def test_a_declined_payment_cannot_be_refunded(gateway, customer):
    with pytest.raises(PaymentDeclined) as declined:
        _charge(gateway, customer, "pm_card_chargeCustomerFail")
    assert declined.value.intent_id is not None
    with pytest.raises(StripeRejected):
        gateway.create_refund(
            payment_intent_id=declined.value.intent_id,
            amount=100,
            idempotency_key="refund-1",
            metadata={},
        )


# Webhooks


def test_a_correctly_signed_event_is_accepted(gateway):
    at = int(time.time())
    event = gateway.construct_event(_event_body("evt_1", at), _sign(_event_body("evt_1", at), at))
    assert (event.id, event.type, event.created) == ("evt_1", "payment_intent.succeeded", at)
    assert (event.object_id, event.object_type) == ("pi_123", "payment_intent")


def test_a_tampered_payload_is_rejected(gateway):
    at = int(time.time())
    signature = _sign(_event_body("evt_1", at), at)
    with pytest.raises(InvalidWebhook, match="signature"):
        gateway.construct_event(_event_body("evt_2", at), signature)


def test_a_signature_older_than_the_tolerance_is_rejected(gateway):
    at = int(time.time()) - 301
    body = _event_body(created=at)
    with pytest.raises(InvalidWebhook, match="tolerance"):
        gateway.construct_event(body, _sign(body, at), tolerance=300)
    assert gateway.construct_event(body, _sign(body, at), tolerance=600).id == "evt_1"


@pytest.mark.parametrize(
    "signature",
    [
        lambda body, at: "",
        lambda body, at: "garbage",
        lambda body, at: f"t={at}",
        lambda body, at: _sign(body, at).replace("v1=", "v0="),
        lambda body, at: _sign(body, at, "whsec_another_secret"),
    ],
    ids=["missing", "garbage", "no-signature", "other-scheme", "other-secret"],
)
def test_a_malformed_or_foreign_signature_is_rejected(gateway, signature):
    at = int(time.time())
    body = _event_body(created=at)
    with pytest.raises(InvalidWebhook, match="signature"):
        gateway.construct_event(body, signature(body, at))


@pytest.mark.parametrize("body", [b"[]", b"{}", b"not json", b"\xff\xfe"])
def test_a_signed_body_that_is_not_an_event_is_rejected(gateway, body):
    at = int(time.time())
    with pytest.raises(InvalidWebhook, match="payload"):
        gateway.construct_event(body, _sign(body, at))


def test_without_a_webhook_secret_every_event_is_rejected(localstripe):
    gateway = StripeGateway(KEY, localstripe.url, API_VERSION, None)
    at = int(time.time())
    with pytest.raises(InvalidWebhook):
        gateway.construct_event(_event_body(created=at), _sign(_event_body(created=at), at))


class _Inbox(BaseHTTPRequestHandler):
    received: list[tuple[bytes, str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, self.headers["Stripe-Signature"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def test_an_event_localstripe_sends_verifies_with_our_secret(gateway, localstripe, customer):
    inbox = ThreadingHTTPServer(("127.0.0.1", 0), _Inbox)
    _Inbox.received = []
    threading.Thread(target=inbox.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{inbox.server_port}/"
        localstripe.register_webhook("gateway-test", url, SECRET)
        intent = _charge(gateway, customer)
        # localstripe sends a second later, to every webhook registered by then: events of
        # earlier tests may arrive too.
        ours = _wait_for_events(gateway, lambda e: e.object_id == intent.id, timeout=10)
    finally:
        inbox.shutdown()
    assert [(e.type, e.object_type) for e in ours] == [
        ("payment_intent.succeeded", "payment_intent")
    ]


def _wait_for_events(
    gateway: StripeGateway, wanted: Callable[[WebhookEvent], bool], timeout: float
) -> list[WebhookEvent]:
    deadline = time.monotonic() + timeout
    while True:
        events = [gateway.construct_event(body, sig) for body, sig in list(_Inbox.received)]
        found = [event for event in events if wanted(event)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


# Stripe out of reach


def test_an_unreachable_stripe_raises_gateway_unavailable_quickly():
    closed = f"http://127.0.0.1:{free_port()}"
    gateway = StripeGateway(KEY, closed, API_VERSION, None, max_network_retries=0)
    started = time.monotonic()
    with pytest.raises(GatewayUnavailable):
        gateway.retrieve_payment_intent("pi_missing")
    assert time.monotonic() - started < 5


def test_a_refused_api_key_raises_gateway_unavailable_not_a_decline(localstripe):
    gateway = StripeGateway("pk_not_a_secret_key", localstripe.url, API_VERSION, None)
    with pytest.raises(GatewayUnavailable, match="AuthenticationError"):
        gateway.retrieve_payment_intent("pi_missing")


def test_a_stripe_server_error_raises_gateway_unavailable(gateway, monkeypatch):
    def fails(*_a, **_kw):
        raise stripe.APIError("Stripe had a problem", http_status=500)

    monkeypatch.setattr(gateway._client.v1.payment_intents, "create", fails)
    with pytest.raises(GatewayUnavailable):
        _charge(gateway, "cus_x", "pm_x")


# The localstripe runner


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port``, from the kernel's socket table."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


def test_localstripe_listens_on_loopback_only(localstripe):
    addresses = _listening_addresses(localstripe.port)
    if not addresses:
        pytest.skip("no /proc/net/tcp on this system")
    assert addresses == {"0100007F"}  # 127.0.0.1, little-endian hex


def test_localstripe_writes_nothing_to_its_shared_tmp_file(gateway, customer):
    shared = Path("/tmp/localstripe.pickle")  # noqa: S108 - the path localstripe hard-codes
    started = time.time() - 1
    gateway.create_customer(email="b@example.test", name="B", citizen_id="c", idempotency_key="k")
    assert not shared.exists() or os.stat(shared).st_mtime < started


def test_clearing_localstripe_forgets_every_object(gateway, localstripe, customer):
    _charge(gateway, customer)
    localstripe.clear()
    assert localstripe.list("customers") == localstripe.list("payment_intents") == []


def test_a_localstripe_with_a_store_file_finds_its_objects_after_a_restart(tmp_path):
    store = tmp_path / "localstripe.pickle"
    with LocalStripe(store=store) as server:
        gateway = StripeGateway(KEY, server.url, API_VERSION, None, max_network_retries=0)
        customer_id = gateway.create_customer(
            email="a@example.test", name="A", citizen_id="c", idempotency_key="k"
        )
    with LocalStripe(store=store) as server:
        assert [c["id"] for c in server.list("customers")] == [customer_id]
    assert [path.name for path in tmp_path.iterdir()] == [store.name]


def test_a_second_localstripe_on_a_taken_port_says_so(localstripe):
    with pytest.raises(RuntimeError, match="already taken"):
        LocalStripe(localstripe.port).start()


def test_a_localstripe_that_cannot_start_says_why():
    with pytest.raises(RuntimeError, match="exited") as error:
        LocalStripe(free_port(), host="192.0.2.1").start()  # TEST-NET: not an address here
    assert "Error" in str(error.value)  # its traceback


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_localstripe_exits_cleanly_when_asked_to_stop(stop):
    with LocalStripe() as server:
        process = server._process
        assert process is not None
        process.send_signal(stop)
        assert process.wait(10) == 0
