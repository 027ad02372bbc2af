"""What payments announce, and how a module hears it. ``payments`` imports no module.

Outcomes travel through the transactional outbox (:mod:`core.outbox`): an outcome is written in
the same transaction as the status change it reports and delivered after the commit, at least
once. A module subscribes in its ``register()``::

    signals.subscribe(app, signals.PAYMENT_SUCCEEDED, "civic.application_paid", on_paid,
                      purpose="civic_application")

``on_paid(outcome: PaymentOutcome)`` runs after the payment's change has committed, in its own
transaction (its writes commit with the delivery mark unless it commits itself). It **must be
idempotent**: the same outcome may arrive twice (a retry after a failure, a crash between its
commit and the mark). Its failure never fails the payment: it is logged and delivered again
later, with a backoff.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass

from flask import Flask

from core import outbox

PAYMENT_SUCCEEDED = "payment_succeeded"
PAYMENT_FAILED = "payment_failed"  # declined, failed, canceled or expired: not paid
REFUND_SUCCEEDED = "refund_succeeded"
REFUND_FAILED = "refund_failed"  # refused, never sent, or failed at Stripe (even after a success)
OUTCOMES = (PAYMENT_SUCCEEDED, PAYMENT_FAILED, REFUND_SUCCEEDED, REFUND_FAILED)


@dataclass(frozen=True)
class PaymentOutcome:
    payment_id: str
    user_id: str
    purpose: str
    reference: str
    amount: int
    currency: str
    status: str
    failure_code: str | None = None
    failure_message: str | None = None
    refund_id: str | None = None
    refunded_amount: int | None = None


def _topic(outcome: str) -> str:
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown payment outcome {outcome!r}; one of {OUTCOMES}")
    return f"payments.{outcome}"


def subscribe(
    app: Flask,
    outcome: str,
    name: str,
    handler: Callable[[PaymentOutcome], None],
    *,
    purpose: str | None = None,
) -> None:
    """Call ``handler`` with each later ``outcome`` (of ``purpose`` only, when given)."""

    def deliver(payload: dict[str, object]) -> None:
        handler(PaymentOutcome(**payload))  # type: ignore[arg-type]

    when = (lambda payload: payload.get("purpose") == purpose) if purpose else None
    outbox.subscribe(app, _topic(outcome), name, deliver, when)


def announce(outcome: str, result: PaymentOutcome) -> None:
    """Write ``outcome`` into the open transaction (payments' own; delivered after commit)."""
    outbox.publish(_topic(outcome), asdict(result))
