"""One Stripe rail: customers, saved cards, payment intents, refunds, webhooks, the ledger.

Other modules call ``payments.service.charge(...)`` and subscribe to ``payments.signals``;
``payments`` imports no module.

``register(app, api)`` adds its blueprints, signal handlers, jobs and CLI, nothing else.
"""

from flask import Flask
from flask_smorest import Api

from core.scheduler import register_job
from payments import cli, routes, service


def register(app: Flask, api: Api) -> None:
    api.register_blueprint(routes.blp)
    register_job(app, "payments.reconcile", service.reconcile, seconds=60)
    app.cli.add_command(cli.payments_cli)
