"""Rate limiting (Flask-Limiter): in memory on a laptop, in Redis when ``REDIS_URL`` is set.

Limits key on ``request.remote_addr``: the client's address as werkzeug's ProxyFix finds it
behind ``TRUSTED_PROXIES`` proxies (``core.security``), never a header a client could forge.
"""

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
    # Limits here are per view (``limiter.limit`` on the view, which checks its own limits when
    # called). Flask-Limiter also runs a check before every request for default and
    # application-wide limits; there are none, and that check costs about 50 us per request.
    app.before_request_funcs[None].remove(limiter._check_request_limit)
