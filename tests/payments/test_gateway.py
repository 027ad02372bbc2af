"""The Stripe adapter and the localstripe runner, on their own."""

import time
from pathlib import Path

import pytest
import stripe

from payments.gateway import AuthenticationRequired, GatewayUnavailable, StripeGateway
from payments.localstripe_server import LocalStripe


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


def test_a_second_localstripe_on_a_taken_port_says_so(localstripe):
    with pytest.raises(RuntimeError, match="already taken"):
        LocalStripe(localstripe.port).start()


def test_an_unreachable_stripe_raises_gateway_unavailable_quickly():
    gateway = StripeGateway(
        "sk_test_x", "http://127.0.0.1:9", "2026-10-28.endive", None, max_network_retries=0
    )
    started = time.monotonic()
    with pytest.raises(GatewayUnavailable):
        gateway.retrieve_payment_intent("pi_missing")
    assert time.monotonic() - started < 5


def test_stripes_authentication_required_becomes_its_own_error(localstripe, monkeypatch):
    gateway = StripeGateway("sk_test_x", localstripe.url, "2026-10-28.endive", None)

    def needs_3ds(*_a, **_kw):
        raise stripe.CardError(
            "Authenticate", None, "authentication_required", json_body={"error": {}}
        )

    monkeypatch.setattr(gateway._client.v1.payment_intents, "create", needs_3ds)
    with pytest.raises(AuthenticationRequired) as error:
        gateway.create_payment_intent(
            amount=100,
            currency="KRW",
            customer_id="cus_x",
            payment_method="pm_x",
            off_session=True,
            idempotency_key="k",
            metadata={},
        )
    assert error.value.code == "authentication_required"
