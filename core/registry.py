"""What core itself registers: its blueprints and its sweeps."""

from flask import Flask
from flask_smorest import Api

from core import cli, demo, idempotency, outbox, scheduler
from core.audit import routes as audit_routes
from core.auth import routes as auth_routes
from core.inbox import routes as inbox_routes


def register(app: Flask, api: Api) -> None:
    api.register_blueprint(auth_routes.blp)
    api.register_blueprint(auth_routes.orgs_blp)
    api.register_blueprint(audit_routes.blp)
    api.register_blueprint(inbox_routes.blp)
    scheduler.register_job(
        app, "core.expire_idempotency_keys", idempotency.sweep_expired_keys, seconds=3600
    )
    scheduler.register_job(app, "core.outbox.deliver", outbox.sweep, seconds=30)
    cli.register_demo_seeder(app, demo.seed)
