"""Pay after treatment: hospitals' visits and charges, credit lines, face templates,
48-hour settlements, the health commission's dashboard.

``register(app, api)`` adds its blueprints, signal handlers, jobs and CLI, nothing else.
"""

from flask import Flask
from flask_smorest import Api


def register(app: Flask, api: Api) -> None:
    """Nothing yet: this module's endpoints arrive with its issue."""
