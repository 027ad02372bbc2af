"""Government services online: the service catalog, applications, the city credit score,
Open311. Owns the citizen's credit score; identity itself lives in ``core.auth``.

``register(app, api)`` adds its blueprints, signal handlers, jobs and CLI, nothing else.
"""

from flask import Flask
from flask_smorest import Api

from civic import demo, jobs, open311_api, routes
from civic.service import applications, credit
from core import outbox
from core.cli import register_demo_seeder
from core.scheduler import register_job
from payments import signals


def register(app: Flask, api: Api) -> None:
    api.register_blueprint(routes.credit_blp)
    api.register_blueprint(routes.catalog_blp)
    api.register_blueprint(routes.applications_blp)
    api.register_blueprint(routes.certificates_blp)
    app.register_blueprint(open311_api.blp)  # outside /api/v1 and the OpenAPI document
    outbox.subscribe(app, credit.TOPIC, credit.SUBSCRIBER, credit.apply_requested_event)
    for outcome, name, handler in (
        (signals.PAYMENT_SUCCEEDED, "civic.application_paid", applications.on_payment_succeeded),
        (signals.PAYMENT_FAILED, "civic.application_not_paid", applications.on_payment_failed),
        (signals.REFUND_SUCCEEDED, "civic.application_refunded", applications.on_refund_succeeded),
    ):
        signals.subscribe(app, outcome, name, handler, purpose=applications.PURPOSE)
    register_job(app, "civic.flag_overdue", jobs.flag_overdue, seconds=300)
    register_job(app, "civic.expire_unpaid", jobs.expire_unpaid, seconds=300)
    register_demo_seeder(app, demo.seed)
