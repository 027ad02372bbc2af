"""Government services online: the service catalog, applications, the city credit score,
Open311. Owns the citizen's credit score; identity itself lives in ``core.auth``.

``register(app, api)`` adds its blueprints, signal handlers, jobs and CLI, nothing else.
"""

from flask import Flask
from flask_smorest import Api

from civic import demo, routes
from civic.service import credit
from core import outbox
from core.cli import register_demo_seeder


def register(app: Flask, api: Api) -> None:
    api.register_blueprint(routes.credit_blp)
    api.register_blueprint(routes.catalog_blp)
    outbox.subscribe(app, credit.TOPIC, credit.SUBSCRIBER, credit.apply_requested_event)
    register_demo_seeder(app, demo.seed)
