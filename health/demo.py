"""health's demo data (``flask demo seed``): nothing to create (core seeds Demo City Hospital
and the accounts; civic gives the demo citizen a score of 650); it prints how to try it."""

from flask import current_app


def seed() -> list[str]:
    """Lines that tell how to walk through pay-later on ``make run``."""
    port = current_app.config["PORT"]
    return [
        "pay-later: citizen@demo.city saves a card, enrols a face (PUT /api/v1/health/face, "
        "e.g. tests/health/fixtures/faces/obama.jpg with consent=true) and joins "
        "(POST /api/v1/health/credit-line); Demo City Hospital posts visits with its key",
        f"health dashboard (commission@demo.city): http://127.0.0.1:{port}/dashboard/health",
    ]
