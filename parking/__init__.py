"""Parking: lots, spaces, tariffs, IoT sensors and their ingestion, availability,
reservations, NGSI-LD.

``register(app, api)`` adds its blueprints, signal handlers, jobs and CLI, nothing else.
"""

from flask import Flask
from flask_smorest import Api

from core.cli import register_demo_seeder
from core.scheduler import register_job
from parking import cli, demo, jobs, metrics, routes
from parking.service import reservations
from payments import signals


def register(app: Flask, api: Api) -> None:
    api.spec.components.security_scheme(
        "gatewayKey",
        {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "pgw_… gateway key"},
    )
    api.register_blueprint(routes.blp)
    api.register_blueprint(routes.ngsi_blp)
    purpose = reservations.PURPOSE
    signals.subscribe(
        app,
        signals.PAYMENT_SUCCEEDED,
        "parking.reservation_paid",
        reservations.on_payment_succeeded,
        purpose=purpose,
    )
    signals.subscribe(
        app,
        signals.PAYMENT_FAILED,
        "parking.reservation_payment_failed",
        reservations.on_payment_failed,
        purpose=purpose,
    )
    signals.subscribe(
        app,
        signals.REFUND_SUCCEEDED,
        "parking.reservation_refunded",
        reservations.on_refund_succeeded,
        purpose=purpose,
    )
    signals.subscribe(
        app,
        signals.REFUND_FAILED,
        "parking.reservation_refund_failed",
        reservations.on_refund_failed,
        purpose=purpose,
    )
    signals.subscribe(
        app,
        signals.PAYMENT_SUCCEEDED,
        "parking.overstay_paid",
        reservations.on_overstay_paid,
        purpose=reservations.OVERSTAY_PURPOSE,
    )
    register_job(app, "parking.reservations", jobs.reservations_sweep, seconds=15)
    register_demo_seeder(app, demo.seed)
    metrics.init_app(app)
    app.cli.add_command(cli.parking_cli)
