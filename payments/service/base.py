"""What every part of the payment rail shares: the Stripe adapter and the status ladder."""

import logging

from flask import current_app

from payments.gateway import StripeGateway

log = logging.getLogger("civic.payments")

OPEN_STATUSES = ("pending", "requires_action", "processing")
TERMINAL_STATUSES = ("succeeded", "failed", "canceled")
# How far along a payment is; a row only ever moves to a higher rank (events arrive out of order).
RANK = {"pending": 0, "requires_action": 1, "processing": 2}
RANK.update(dict.fromkeys(TERMINAL_STATUSES, 3))


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
