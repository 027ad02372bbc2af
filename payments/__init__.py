"""One Stripe rail: customers, saved cards, payment intents, refunds, webhooks, the ledger.

Other modules call ``payments.service.charge(...)`` (and ``refund``, ``balance``) and subscribe
to ``payments.signals``; ``payments`` imports no module.

The contract with a calling module:

- **Commit your own work first.** ``charge``, ``refund`` and the card functions refuse to run
  while your session holds uncommitted writes (added, changed or flushed rows): they raise
  ``RuntimeError`` and leave those writes in your session, untouched. A read-only transaction
  of yours is ended (committed, which writes nothing).
- **Payments never commits or discards your objects.** It commits only its own rows, and when
  it fails it rolls back only its own unfinished work. It returns with no transaction open.
- **No transaction is held while Stripe answers.** Payments ends its transaction before every
  HTTP call to Stripe, so a slow Stripe never holds a row lock (PostgreSQL) or the database's
  write lock (SQLite) for other requests.
- **Outcomes come later, at least once.** ``payment_succeeded``, ``payment_failed``,
  ``refund_succeeded`` and ``refund_failed`` are written to the outbox in the transaction that
  changes the payment, and delivered after it commits; a receiver that fails is retried by the
  ``core.outbox.deliver`` sweep with a backoff. Receivers **must be idempotent**: the same
  outcome may arrive twice. A receiver's failure never fails the payment or refund request.
- **Keys from business objects.** ``charge(idempotency_key="bill-<id>-attempt-<n>")`` makes at
  most one payment per key; ``refund(..., idempotency_key=...)`` at most one refund per key.

``register(app, api)`` adds its blueprints, signal handlers, jobs and CLI, nothing else.
"""

from flask import Flask
from flask_smorest import Api

from core.scheduler import register_job
from payments import cli, routes, service


def register(app: Flask, api: Api) -> None:
    service.check_limits(app.config)
    api.register_blueprint(routes.blp)
    register_job(app, "payments.reconcile", service.reconcile, seconds=60)
    register_job(
        app, "payments.expire_requires_action", service.expire_requires_action, seconds=600
    )
    app.cli.add_command(cli.payments_cli)
