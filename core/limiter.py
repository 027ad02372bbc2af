"""Rate limiting (Flask-Limiter): in memory on a laptop, in Redis when ``REDIS_URL`` is set."""

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# One per process, as Flask-Limiter expects: the last app initialised owns its storage.
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)


def login_email_key() -> str:
    """Limit guesses against one account from many addresses too."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return f"email:{str(email).strip().lower()}" if email else get_remote_address()


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
