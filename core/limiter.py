"""Rate limiting (Flask-Limiter): in memory on a laptop, in Redis when ``REDIS_URL`` is set.

Limits key on ``request.remote_addr``: the client's address as werkzeug's ProxyFix finds it
behind ``TRUSTED_PROXIES`` proxies (``core.security``), never a header a client could forge.

Limits here are per view (``limiter.limit`` on the view; the decorated view checks its own
limits when called). Flask-Limiter also hooks every request of the app: a check before it for
default and application-wide limits (there are none), and after it the rate-limit headers and
a clean-up. Measured at ~55 us and ~10 us a request, so the first is removed and the other two
run only for a view that has limits.
"""

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

# One per process, as Flask-Limiter expects: the last app initialised owns its storage.
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
# What Flask-Limiter marks its decorated views with (flask_limiter/_limits.py).
_LIMITED_VIEW = "__wrapper-limiter-instance"


def login_email_key() -> str:
    """Limit guesses against one account from many addresses too."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return f"email:{str(email).strip().lower()}" if email else get_remote_address()


def _view_has_limits() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, _LIMITED_VIEW, None) is not None  # a weak proxy to our limiter


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)
    if not limiter.enabled:  # RATELIMIT_ENABLED=False: Flask-Limiter added no hooks at all
        return
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    after, teardown = app.after_request_funcs[None], app.teardown_request_funcs[None]
    inject_headers, release = after.pop(), teardown.pop()  # the two init_app just added
    expected_inject = getattr(Limiter, "_Limiter__inject_headers")  # noqa: B009 - name-mangled
    expected_release = getattr(limiter, "_Limiter__release_context")  # noqa: B009
    if getattr(inject_headers, "func", None) is not expected_inject or release != expected_release:
        raise RuntimeError("Flask-Limiter's request hooks changed: revisit core/limiter.py")

    def _only_for_limited_views(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def guarded(argument: Any) -> Any:
            return hook(argument) if _view_has_limits() else argument

        return guarded

    after.append(_only_for_limited_views(inject_headers))
    teardown.append(_only_for_limited_views(release))
