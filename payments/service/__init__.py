"""The payment rail's rules: customers, saved cards, charges, refunds, webhooks, reconciliation.

Money never moves twice: a charge first commits a ``pending`` row whose unique idempotency key
comes from the business object (``bill-<id>-attempt-<n>``), and only the request that wrote the
row calls Stripe, with a Stripe idempotency key derived from the row. Stripe's answer, a webhook
or the reconciliation sweep then moves the row forward, never back.

This package is the module's service layer, the only code that writes its tables; other
modules call what is exported here.
"""

from payments.service.base import gateway
from payments.service.cards import ensure_customer, list_cards, remove_card, save_card
from payments.service.charges import (
    apply_intent,
    balance,
    charge,
    get_payment,
    history,
    payment_detail,
    refunds_of,
)
from payments.service.reconcile import reconcile
from payments.service.refunds import apply_refund, refund
from payments.service.webhooks import process_event, receive_webhook

__all__ = [
    "apply_intent",
    "apply_refund",
    "balance",
    "charge",
    "ensure_customer",
    "gateway",
    "get_payment",
    "history",
    "list_cards",
    "payment_detail",
    "process_event",
    "receive_webhook",
    "reconcile",
    "refund",
    "refunds_of",
    "remove_card",
    "save_card",
]
