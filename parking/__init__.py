"""Parking: lots, spaces, tariffs, IoT sensors and their ingestion, availability,
reservations, NGSI-LD.

``register(app, api)`` adds its blueprints, signal handlers, jobs and CLI, nothing else.
"""

from flask import Flask
from flask_smorest import Api


def register(app: Flask, api: Api) -> None:
    """Nothing yet: this module's endpoints arrive with its issue."""
