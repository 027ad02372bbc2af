"""HTTP hardening: the client's address behind trusted proxies, and security headers.

- ``TRUSTED_PROXIES`` (default 0) is how many proxies in front of the app append to
  ``X-Forwarded-For`` / ``X-Forwarded-Proto``. werkzeug's ProxyFix then takes the client address
  that many hops from the right, so rate limits key on the citizen rather than on the load
  balancer; with 0 the headers are ignored and nobody can forge an address with them.
- Every response says ``nosniff``, may not be framed, sends no referrer, and carries HSTS when
  the request came over HTTPS (as the trusted proxy reports it). Views that hand out tokens add
  ``Cache-Control: no-store`` with :func:`no_store`.
- The API authenticates with tokens and keys, never a cookie: Flask's cookie session is never
  opened (it cost ~20 us a request to find no cookie).

A few lines of WSGI middleware rather than flask-talisman: its last release is from August 2023,
and its defaults are for HTML sites (an HTTPS redirect, a script policy that blocks the inline
script of Swagger UI at ``/docs``, session cookie flags), so what would be left is these five
headers. Added at the WSGI level, they cost ~2 us a request (werkzeug's ``Headers`` ~15 us) and
cover every response, error pages included.
"""

from collections.abc import Callable, Iterable
from functools import wraps
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeVar

from flask import Flask, Request, make_response
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import WSGIRequestHandler

F = TypeVar("F", bound=Callable[..., Any])

HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    # Only who may frame us: a script policy would break Swagger UI's inline script at /docs.
    ("Content-Security-Policy", "frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
)
SERVER_NAME = "civic"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def no_store(view: F) -> F:
    """Forbid every cache from keeping the response (tokens, per RFC 6749 section 5.1)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        response = make_response(view(*args, **kwargs))
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    return wrapper  # type: ignore[return-value]


def _hide_development_server_version() -> None:
    """werkzeug's development server sends ``Server: Werkzeug/x.y Python/x.y`` and has no setting
    for it; say only a name. (gunicorn sends ``Server: gunicorn``, without its version.)"""
    WSGIRequestHandler.version_string = _server_name  # type: ignore[method-assign]


def _server_name(self: BaseHTTPRequestHandler) -> str:
    return SERVER_NAME


class SecurityHeaders:
    """WSGI middleware: add the security headers a response does not already carry."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        secure = environ.get("wsgi.url_scheme") == "https"

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            for header in (*HEADERS, HSTS) if secure else HEADERS:
                if header[0].lower() not in present:
                    headers.append(header)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


class NoCookieSession(SecureCookieSessionInterface):
    """No cookie session: ``flask.session`` is a null session that refuses writes."""

    def open_session(self, app: Flask, request: Request) -> None:
        return None


def init_app(app: Flask) -> None:
    """Add the security headers to every response; trust ``TRUSTED_PROXIES`` proxies (outside
    the headers, so HSTS sees the scheme the proxy reported)."""
    app.session_interface = NoCookieSession()
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        # Only the address and the scheme: a Host that a proxy does not set could be forged.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    _hide_development_server_version()
