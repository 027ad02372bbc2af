"""``/open311/v2``: Open311 GeoReport v2, as the spec (``open311/open311.github.io``,
``GeoReport/v2/index.md``) says: every resource in ``.json`` and ``.xml``, responses as arrays,
errors as arrays of ``{code, description}``, XML without a namespace as in the spec's examples,
a form-encoded POST carrying ``api_key``.

This is the protocol adapter (URLs, formats, the error shape); the rules live in
``civic.service.open311``. It is outside ``/api/v1`` and outside the OpenAPI document, since the
Open311 specification documents it.
"""

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from xml.etree import ElementTree as ET

from flask import Blueprint, Response, g, request
from flask_babel import get_locale
from werkzeug.exceptions import BadRequest, HTTPException

from civic.errors import FormInvalid
from civic.service import open311
from core import inputs
from core.auth import service as auth
from core.auth.access import PUBLIC, requires
from core.errors import DomainError, Forbidden, Unauthorized
from core.i18n import LOCALES, _l
from core.idempotency import idempotent

blp = Blueprint("open311", __name__, url_prefix="/open311/v2")
FORMAT = "<any(json, xml):fmt>"
# The element a list's items take in XML (the Spark convention, read backwards).
ITEMS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}
F = TypeVar("F", bound=Callable[..., Any])


def render(fmt: str, root: str, data: Any, status: int = 200) -> Response:
    """``data`` as JSON, or as XML under ``root`` (lists become repeated child elements)."""
    if fmt == "json":
        body = json.dumps(data, ensure_ascii=False)
        return Response(body, status, content_type="application/json; charset=utf-8")
    element = _element(root, data)
    xml = ET.tostring(element, encoding="unicode")
    body = f'<?xml version="1.0" encoding="utf-8"?>\n{xml}'
    return Response(body.encode(), status, content_type="text/xml; charset=utf-8")


def _element(name: str, value: Any) -> ET.Element:
    element = ET.Element(name)
    if isinstance(value, dict):
        for key, child in value.items():
            element.append(_element(key, child))
    elif isinstance(value, list):
        for item in value:
            element.append(_element(ITEMS[name], item))
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)
    return element


def _fmt() -> str:
    return str((request.view_args or {}).get("fmt", "xml"))


def _lang() -> str:
    asked = request.args.get("lang")
    return asked if asked in LOCALES else str(get_locale())


@blp.errorhandler(DomainError)
def _domain_error(error: DomainError) -> Response:
    """Errors as the spec has them: an array of ``{code, description}``; a form's errors are
    400 with one entry per field."""
    status = 400 if error.status == 422 else error.status
    if isinstance(error, FormInvalid):
        entries = [
            {"code": status, "description": f"{field}: {message}"}
            for field, messages in error.errors.items()
            for message in messages
        ]
    else:
        entries = [{"code": status, "description": str(error.message)}]
    return render(_fmt(), "errors", entries, status)


@blp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    status = error.code or 400
    return render(_fmt(), "errors", [{"code": status, "description": error.description}], status)


@blp.before_request
def _refuse_bad_text() -> None:
    """A NUL or a lone surrogate in any argument is a 400 in Open311's error shape (PostgreSQL
    refuses such text; this API never lets it reach the database)."""
    pairs = [*request.args.items(multi=True), *request.form.items(multi=True)]
    if any(inputs.is_bad_text(key) or inputs.is_bad_text(value) for key, value in pairs):
        raise BadRequest(str(inputs.BAD_TEXT))


def open311_client(view: F) -> F:
    """The caller is the ``open311_client`` organisation whose key is the ``api_key`` form field
    (or an ``X-API-Key`` header); otherwise 403, as the spec says."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        presented = request.form.get("api_key") or request.headers.get("X-API-Key") or ""
        try:
            principal = auth.principal_from_api_key(presented.strip())
        except Unauthorized:
            principal = None
        if principal is None or principal.role != "open311_client":
            raise Forbidden(_l("API key is not valid."))
        g.principal = principal
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@blp.get(f"/discovery.{FORMAT}")
@requires(PUBLIC)
def discovery(fmt: str) -> Response:
    """Service discovery: the endpoint, its specification and formats."""
    return render(fmt, "discovery", open311.discovery(request.url_root + "open311/v2"))


@blp.get(f"/services.{FORMAT}")
@requires(PUBLIC)
def services(fmt: str) -> Response:
    """GET Service List: the published Open311 services."""
    open311.check_jurisdiction(request.args.get("jurisdiction_id"))
    return render(fmt, "services", open311.services(_lang()))


@blp.get(f"/services/<service_code>.{FORMAT}")
@requires(PUBLIC)
def service_definition(service_code: str, fmt: str) -> Response:
    """GET Service Definition: the service's form as attributes."""
    open311.check_jurisdiction(request.args.get("jurisdiction_id"))
    return render(fmt, "service_definition", open311.definition(service_code, _lang()))


@blp.get(f"/requests.{FORMAT}")
@requires(PUBLIC)
def requests_(fmt: str) -> Response:
    """GET Service Requests: by ids, or by service code, status and dates."""
    args = request.args
    open311.check_jurisdiction(args.get("jurisdiction_id"))
    found = open311.find_requests(
        args.get("service_request_id"),
        args.get("service_code"),
        open311.parse_datetime(args.get("start_date"), "start_date"),
        open311.parse_datetime(args.get("end_date"), "end_date"),
        args.get("status"),
        _lang(),
    )
    return render(fmt, "service_requests", found)


@blp.post(f"/requests.{FORMAT}")
@requires(PUBLIC)  # authenticated by the api_key form field, as the spec says
@open311_client
@idempotent
def create_request(fmt: str) -> Response:
    """POST Service Request: file an application, the client organisation reporting."""
    open311.check_jurisdiction(request.form.get("jurisdiction_id"))
    form = {name: request.form.getlist(name) for name in request.form}
    created = open311.file_request(g.principal, form)
    return render(fmt, "service_requests", created)


@blp.get(f"/requests/<request_id>.{FORMAT}")
@requires(PUBLIC)
def one_request(request_id: str, fmt: str) -> Response:
    """GET Service Request: one request, as a list of one."""
    open311.check_jurisdiction(request.args.get("jurisdiction_id"))
    return render(fmt, "service_requests", open311.one_request(request_id, _lang()))


@blp.get(f"/tokens/<token>.{FORMAT}")
@requires(PUBLIC)
def token(token: str, fmt: str) -> Response:
    """GET service_request_id from a token."""
    open311.check_jurisdiction(request.args.get("jurisdiction_id"))
    return render(fmt, "service_requests", open311.from_token(token))
