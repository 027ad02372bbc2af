"""Domain exceptions and the one place that maps them to the API's error shape.

Services raise these; routes never build error responses. The JSON shape is flask-smorest's
(``code``, ``status``, ``message``, ``errors``), so validation errors raised by webargs and
domain errors look the same to a client. A refusal that tells the app what to do next adds a
stable machine code ``error`` (``face_mismatch``) and its details (``attempts_left``): a
subclass sets ``error_code`` and passes ``details``; :class:`ErrorSchema` documents both.
"""

from http import HTTPStatus
from typing import Any

import marshmallow as ma
from flask import Flask, Response, jsonify
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from core.i18n import Message, _l

AUTHENTICATION_REQUIRED = _l("Authentication required.")
NOT_FOUND = _l("Not found.")


class ErrorSchema(ma.Schema):
    """The one error shape (for the spec; errors are built by :meth:`DomainError.payload`)."""

    class Meta:
        unknown = ma.INCLUDE  # the details of a refusal: additional properties

    code = ma.fields.Integer(metadata={"description": "The HTTP status."})
    status = ma.fields.String(metadata={"description": "The HTTP status's name."})
    message = ma.fields.String(metadata={"description": "What happened, in the reader's language."})
    errors = ma.fields.Dict(
        metadata={"description": "Field errors by location, then field: {json: {email: [...]}}."}
    )
    error = ma.fields.String(
        metadata={
            "description": "A stable code for programs where the refusal has one "
            "(face_mismatch, limit_exceeded...); its details (attempts_left, unlocks_at, "
            "available, missing, rule...) are further properties."
        }
    )


class DomainError(Exception):
    """A business rule refused the request. Subclasses fix the HTTP status, and may name the
    refusal with ``error_code`` (sent as ``error``) and pass ``details`` (sent alongside)."""

    status = 400
    error_code: str | None = None

    def __init__(
        self,
        message: Message,
        *,
        field: str | None = None,
        location: str = "json",
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self._message = message  # a lazy message id (_l): rendered in the reader's locale
        self.field = field
        self.location = location
        self.headers = headers or {}
        self.details = details or {}

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
        if self.error_code:
            body["error"] = self.error_code
        return body | self.details


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
