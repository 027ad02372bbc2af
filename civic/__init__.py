"""civic: see README. Registers its blueprints, signal handlers, jobs and CLI."""

from flask import Flask
from flask_smorest import Api


def register(app: Flask, api: Api) -> None:
    """Nothing yet: this module's endpoints arrive with its issue."""
