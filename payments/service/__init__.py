"""The payment rail's rules: customers, saved cards, charges, refunds, webhooks, reconciliation.

Money never moves twice: a charge (and a refund) first commits a ``pending`` row under a unique
business key (``bill-<id>-attempt-<n>``; for a refund, the request's ``Idempotency-Key``), and
only the request that wrote the row calls Stripe, with a Stripe idempotency key derived from the
row. Stripe's answer, a webhook or a sweep then moves the row forward, never back. Each public
function is its own unit of work (``base.unit_of_work``): it refuses a caller's uncommitted
writes, commits only its own rows, and holds no transaction while Stripe answers.

This package is the module's service layer, the only code that writes its tables; other
modules call what is exported here.
"""

from payments.service.base import gateway
from payments.service.cards import ensure_customer, list_cards, remove_card, save_card
from payments.service.charges import (
    apply_intent,
    balance,
    charge,
    check_limits,
    client_secret,
    get_payment,
    history,
    max_amount,
    payment_detail,
    refunds_of,
)
from payments.service.reconcile import expire_requires_action, reconcile
from payments.service.refunds import apply_refund, refund
from payments.service.webhooks import process_event, receive_webhook

__all__ = [
    "apply_intent",
    "apply_refund",
    "balance",
    "charge",
    "check_limits",
    "client_secret",
    "ensure_customer",
    "expire_requires_action",
    "gateway",
    "get_payment",
    "history",
    "list_cards",
    "max_amount",
    "payment_detail",
    "process_event",
    "receive_webhook",
    "reconcile",
    "refund",
    "refunds_of",
    "remove_card",
    "save_card",
]
