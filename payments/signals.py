"""What payments announce. ``payments`` imports no module; modules subscribe in ``register()``:

    payment_succeeded.connect(on_paid)   # on_paid(sender, payment=..., purpose=..., reference=...)

Receivers run after the payment's change is committed, in the same process, and get a
read-only snapshot (:class:`PaymentOutcome`).
"""

from dataclasses import dataclass

from blinker import Namespace

_signals = Namespace()
payment_succeeded = _signals.signal("payment_succeeded")
payment_failed = _signals.signal("payment_failed")
refund_succeeded = _signals.signal("refund_succeeded")


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
