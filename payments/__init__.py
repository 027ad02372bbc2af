"""One Stripe rail: customers, saved cards, payment intents, refunds, webhooks, the ledger.

``register(app, api)`` adds its blueprints, signal handlers, jobs and CLI, nothing else.
"""

from flask import Flask
from flask_smorest import Api


def register(app: Flask, api: Api) -> None:
    """Nothing yet: this module's endpoints arrive with its issue."""
