"""The application factory: ``create_app(config=None)``.

``flask --app app run`` serves it; gunicorn serves ``app:create_app()`` (``gunicorn.conf.py``
holds the recommended settings).
"""

from typing import Any

import click
from flask import Flask

import civic
import health
import parking
import payments
from core import cli, db, errors, i18n, limiter, logs, ops, outbox, registry, scheduler, security
from core import config as settings
from core.api import make_api

MODULES = (civic, payments, parking, health)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment, with ``config`` on top (tests use it)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(settings.load())
    app.config.update(config or {})
    app.config["APP_ENV"] = settings.resolve_app_env(
        app.config["APP_ENV"],
        testing=bool(app.config.get("TESTING")),
        command_line=click.get_current_context(silent=True) is not None,
    )
    settings.validate(app.config)

    security.init_app(app)
    logs.init_app(app)
    i18n.init_app(app)
    db.init_app(app)
    outbox.init_app(app)
    limiter.init_app(app)
    ops.init_app(app)
    api = make_api(app)
    errors.init_app(app, api)
    registry.register(app, api)
    for module in MODULES:
        module.register(app, api)
    api.declare_links()
    cli.init_app(app)

    if scheduler.should_embed(app):
        scheduler.start_embedded(app)
    return app
