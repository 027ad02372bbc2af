"""Domain exceptions and the one place that maps them to the API's error shape.

Services raise these; routes never build error responses. The JSON shape is flask-smorest's
(``code``, ``status``, ``message``, ``errors``), so validation errors raised by webargs and
domain errors look the same to a client.
"""

from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from core.i18n import Message, _l

AUTHENTICATION_REQUIRED = _l("Authentication required.")
NOT_FOUND = _l("Not found.")


class DomainError(Exception):
    """A business rule refused the request. Subclasses fix the HTTP status."""

    status = 400

    def __init__(
        self,
        message: Message,
        *,
        field: str | None = None,
        location: str = "json",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self._message = message  # a lazy message id (_l): rendered in the reader's locale
        self.field = field
        self.location = location
        self.headers = headers or {}

    @property
    def message(self) -> str:
        """The message in the current locale (the request's; English in the CLI)."""
        return str(self._message)

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.status,
            "status": HTTPStatus(self.status).phrase,
            "message": self.message,
        }
        if self.field:
            body["errors"] = {self.location: {self.field: [self.message]}}
        return body


class BadRequest(DomainError):
    status = 400


class Unauthorized(DomainError):
    status = 401

    def __init__(self, message: Message = AUTHENTICATION_REQUIRED, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="api"'})
        super().__init__(message, **kwargs)


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404

    def __init__(self, message: Message = NOT_FOUND, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class Conflict(DomainError):
    status = 409


class InvalidInput(DomainError):
    """Input that is well-formed but breaks a rule; names the field at fault."""

    status = 422


def error_response(error: DomainError) -> Response:
    """The JSON response for a domain error."""
    response = jsonify(error.payload())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def init_app(app: Flask, api: Api) -> None:
    """Map domain errors and HTTP errors (404, 405, 413, 429, 500...) to the one shape.

    flask-smorest's handler gives the shape; this adds a human ``message`` where it has none
    and keeps the headers an HTTP error carries (``Allow`` on 405, ``Retry-After`` on 429).
    A 500 says only that the server failed: Flask has already logged the traceback.
    """

    def http_error(error: HTTPException) -> tuple[Any, int, Any]:
        payload, status, headers = api.handle_http_exception(error)
        payload.setdefault("message", error.description)
        merged = dict(error.get_headers())
        merged.pop("Content-Type", None)
        merged.update(headers or {})
        return jsonify(payload), status, merged

    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(DomainError, error_response)
