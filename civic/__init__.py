"""Government services online: the service catalog, applications, the city credit score,
Open311. Owns the citizen's profile and credit score; identity itself lives in ``core.auth``.

``register(app, api)`` adds its blueprints, signal handlers, jobs and CLI, nothing else.
"""

from flask import Flask
from flask_smorest import Api


def register(app: Flask, api: Api) -> None:
    """Nothing yet: this module's endpoints arrive with its issue."""
