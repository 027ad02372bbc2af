"""Pay after treatment: a citizen whose city credit score is high enough is treated first and
settles within a window, in the app, confirmed by face; hospitals post visits and charges; the
health commission watches the day's figures.

``register(app, api)`` adds its blueprints, signal handlers, jobs and CLI, nothing else.
"""

from flask import Flask
from flask_smorest import Api

from core.cli import register_demo_seeder
from health import demo, jobs, routes
from health.service import settlements
from payments import signals


def register(app: Flask, api: Api) -> None:
    api.register_blueprint(routes.blp)
    api.register_blueprint(routes.fhir_blp)
    app.register_blueprint(routes.page_bp)
    purpose = settlements.PURPOSE
    for outcome, name, handler in (
        (signals.PAYMENT_SUCCEEDED, "health.settlement_paid", settlements.on_payment_succeeded),
        (signals.PAYMENT_FAILED, "health.settlement_failed", settlements.on_payment_failed),
        (signals.REFUND_SUCCEEDED, "health.bill_refunded", settlements.on_refund_succeeded),
        (signals.REFUND_FAILED, "health.bill_refund_failed", settlements.on_refund_failed),
    ):
        signals.subscribe(app, outcome, name, handler, purpose=purpose)
    jobs.register(app)
    register_demo_seeder(app, demo.seed)
