"""What every part of the payment rail shares: the Stripe adapter, the status ladder, and how a
service function keeps to its own unit of work.

The transaction contract (see ``payments/__init__.py``):

- a public service function starts with :func:`unit_of_work`: it refuses to run while the
  caller's session holds uncommitted writes (a ``RuntimeError`` saying so; the caller's objects
  stay in its session, untouched), and ends the caller's read-only transaction;
- from there on the session holds only payments' own work, so payments commits it, and rolls
  back only that when it fails;
- :func:`before_stripe` ends every transaction before an HTTP call to Stripe: no lock or
  snapshot is held while Stripe answers (on SQLite every transaction holds the write lock).
"""

import logging
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import current_app
from sqlalchemy import select

from core import db
from core.errors import NotFound
from core.i18n import _l
from payments.gateway import StripeGateway
from payments.models import Payment, Refund

log = logging.getLogger("civic.payments")

OPEN_STATUSES = ("pending", "requires_action", "processing")
TERMINAL_STATUSES = ("succeeded", "failed", "canceled")
# How far along a payment is; a row only ever moves to a higher rank (events arrive out of order).
RANK = {"pending": 0, "requires_action": 1, "processing": 2}
RANK.update(dict.fromkeys(TERMINAL_STATUSES, 3))

P = ParamSpec("P")
T = TypeVar("T")


def gateway() -> StripeGateway:
    """The app's Stripe adapter, built from configuration on first use."""
    extensions = current_app.extensions
    if "stripe_gateway" not in extensions:
        config = current_app.config
        extensions["stripe_gateway"] = StripeGateway(
            secret_key=config["STRIPE_SECRET_KEY"],
            api_base=config["STRIPE_API_BASE"] or None,
            api_version=config["STRIPE_API_VERSION"],
            webhook_secret=config["STRIPE_WEBHOOK_SECRET"] or None,
        )
    return extensions["stripe_gateway"]


def unit_of_work(func: Callable[P, T]) -> Callable[P, T]:
    """Run a public service function as payments' own unit of work (see the module docstring).

    Refuses a session with the caller's uncommitted writes; rolls back only payments' own
    unfinished work when the function fails; leaves no transaction open when it returns.
    """

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if db.has_pending_writes():
            raise RuntimeError(
                f"payments.{func.__name__}() refused: the session holds uncommitted changes. "
                "Commit (or roll back) your own work before calling payments; payments never "
                "commits or discards it."
            )
        db.session.commit()  # ends the caller's read-only transaction (writes nothing)
        try:
            result = func(*args, **kwargs)
        except BaseException:
            db.session.rollback()  # payments' own unfinished work only: the caller's was clean
            raise
        db.end_read_transaction()  # raises if payments left writes uncommitted (a bug)
        return result

    return wrapper


def before_stripe() -> None:
    """End payments' transaction before an HTTP call to Stripe (it must hold no writes)."""
    db.end_read_transaction()


def lock_payment(payment_id: str) -> Payment:
    """The payment, re-read and locked for this transaction (``FOR UPDATE`` on PostgreSQL;
    SQLite's ``BEGIN IMMEDIATE`` serialises writers): the request, the webhook and the sweeps
    may apply the same news at once, so each decides on fresh data."""
    payment = db.session.scalars(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if payment is None:
        raise NotFound(_l("No such payment."))
    return payment


def reload_refund(refund_id: str) -> Refund:
    """The refund re-read in the current transaction (lock its payment first)."""
    record = db.session.scalars(
        select(Refund).where(Refund.id == refund_id).execution_options(populate_existing=True)
    ).one()
    return record
