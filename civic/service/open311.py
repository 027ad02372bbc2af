"""Open311 GeoReport v2 over the catalog and applications (the rules; ``civic/open311_api.py``
speaks the protocol: URLs, formats, the error arrays).

Only services flagged ``open311`` are listed. A request filed by an ``open311_client``
organisation is an application of the service with the organisation as the reporter. What GET
answers comes from the application and never carries personal data (the reporter's contact is
kept, never shown back).
"""

import math
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from civic.errors import FormInvalid
from civic.models import Application, Department, Service, ServiceVersion
from civic.service import catalog, forms, timeline
from core import db
from core.audit import service as audit
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import BadRequest, NotFound
from core.i18n import _l
from core.ids import new_id

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
# Our form's datatypes as Open311's, with a description where the mapping loses something.
DATATYPES = {
    "string": ("string", None),
    "text": ("text", None),
    "number": ("number", None),
    "datetime": ("datetime", _l("A date and time with a timezone (ISO 8601).")),
    "date": ("string", _l("A date (YYYY-MM-DD).")),
    "email": ("string", _l("An email address.")),
    "phone": ("string", _l("A phone number.")),
    "boolean": ("singlevaluelist", _l("true or false.")),
    "singlevaluelist": ("singlevaluelist", None),
    "multivaluelist": ("multivaluelist", None),
}
CLOSED = ("approved", "rejected", "cancelled", "expired")
MAX_SPAN = timedelta(days=90)
MAX_REQUESTS = 1000
_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
CONTACT_FIELDS = ("email", "first_name", "last_name", "phone", "device_id", "account_id")


def check_jurisdiction(jurisdiction_id: str | None) -> None:
    """We serve one jurisdiction: the parameter may be left out, but a wrong one is 404."""
    if jurisdiction_id and jurisdiction_id != current_app.config["OPEN311_JURISDICTION_ID"]:
        raise NotFound(_l("jurisdiction_id was not found."), field="jurisdiction_id")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _in(text: Mapping[str, str], lang: str) -> str:
    return text.get(lang) or next(iter(text.values()), "")


# --- discovery and services ----------------------------------------------------------------


def discovery(endpoint_url: str) -> dict[str, Any]:
    """The service discovery document: where GeoReport v2 is served, in which formats."""
    changed = db.session.scalar(select(func.max(Service.updated_at)))
    changeset = _iso(changed) or "2026-01-01T00:00:00+00:00"
    return {
        "changeset": changeset,
        "contact": current_app.config["OPEN311_CONTACT"],
        "key_service": str(_l("Ask the city's administrators for an open311_client API key.")),
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": endpoint_url,
                "changeset": changeset,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }


def _open311_services() -> Any:
    return catalog.published().where(ServiceVersion.open311.is_(True))


def services(lang: str) -> list[dict[str, Any]]:
    """Every published Open311 service."""
    rows = db.session.execute(_open311_services().order_by(Service.code))
    return [
        {
            "service_code": service.code,
            "service_name": _in(version.name, lang),
            "description": _in(version.description, lang),
            "metadata": bool(version.fields),
            "type": current_app.config["OPEN311_REQUEST_TYPE"],
            "keywords": ", ".join(version.keywords) or None,
            "group": version.category,
        }
        for service, version in rows
    ]


def _service(code: str) -> tuple[Service, ServiceVersion]:
    row = db.session.execute(_open311_services().where(Service.code == code)).one_or_none()
    if row is None:
        raise NotFound(_l("service_code was not found."), field="service_code")
    return row[0], row[1]


def definition(code: str, lang: str) -> dict[str, Any]:
    """A service's form as Open311 attributes."""
    _, version = _service(code)
    return {
        "service_code": code,
        "attributes": [
            _attribute(field, order, lang) for order, field in enumerate(version.fields, 1)
        ],
    }


def _attribute(field: dict[str, Any], order: int, lang: str) -> dict[str, Any]:
    datatype, description = DATATYPES[field["datatype"]]
    attribute: dict[str, Any] = {
        "variable": True,
        "code": field["code"],
        "datatype": datatype,
        "required": bool(field.get("required")),
        "datatype_description": str(description) if description else None,
        "order": order,
        "description": _in(field["label"], lang),
    }
    if field["datatype"] == "boolean":
        attribute["values"] = [{"key": "true", "name": "true"}, {"key": "false", "name": "false"}]
    elif field.get("values"):
        attribute["values"] = [
            {"key": value["key"], "name": _in(value["name"], lang)} for value in field["values"]
        ]
    return attribute


# --- filing a request ----------------------------------------------------------------------


def file_request(reporter: Principal, form: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """POST requests: file an application of the service, the client organisation reporting.

    ``form`` maps each form-encoded name to its values.
    """
    first = {name: (values[0] if values else "") for name, values in form.items()}
    code = first.get("service_code", "").strip()
    if not code:
        raise BadRequest(_l("service_code was not provided."), field="service_code")
    service, version = _service(code)
    location = _location(first)
    answers = _answers(version.fields, form)
    kept, errors = forms.check_answers(version.fields, answers)
    errors = {_attribute_name(name): messages for name, messages in errors.items()}
    errors |= _free_text_errors(first)
    if errors:
        raise FormInvalid(_l("Some attributes are not right."), errors)
    application = _create(reporter, service, version, kept, location, first)
    db.session.commit()
    notice = str(_l("We will respond within %(days)s days.", days=version.processing_days))
    if current_app.config["OPEN311_REQUEST_TYPE"] == "batch":
        return [{"token": application.open311_token, "service_notice": notice, "account_id": None}]
    return [{"service_request_id": application.id, "service_notice": notice, "account_id": None}]


def _location(first: Mapping[str, str]) -> dict[str, Any]:
    """lat and long, or address_string, or address_id: one of them is required."""
    lat, long = first.get("lat", "").strip(), first.get("long", "").strip()
    place: dict[str, Any] = {"latitude": None, "longitude": None}
    if lat or long:
        try:
            latitude, longitude = float(lat), float(long)
        except ValueError:
            latitude = longitude = math.nan
        finite = math.isfinite(latitude) and math.isfinite(longitude)
        if not finite or abs(latitude) > 90 or abs(longitude) > 180:
            raise BadRequest(_l("lat and long must both be given, in WGS84 degrees."), field="lat")
        place["latitude"], place["longitude"] = latitude, longitude
    place["address"] = first.get("address_string", "").strip()[:1000] or None
    place["address_id"] = first.get("address_id", "").strip()[:100] or None
    if place["latitude"] is None and not place["address"] and not place["address_id"]:
        raise BadRequest(
            _l("A location is required: lat and long, address_string or address_id."),
            field="lat",
        )
    return place


def _answers(fields: list[dict[str, Any]], form: Mapping[str, list[str]]) -> dict[str, Any]:
    """``attribute[CODE]=value`` (and ``attribute[CODE][]=v1&...`` for lists), as the form's
    typed answers: numbers as numbers, booleans as booleans, lists as lists."""
    datatypes = {field["code"]: field["datatype"] for field in fields}
    answers: dict[str, Any] = {}
    for name, values in form.items():
        match = _ATTRIBUTE.match(name)
        if match is None:
            continue
        code = match.group(1)
        answers[code] = _typed(datatypes.get(code), values)
    return answers


def _typed(datatype: str | None, values: list[str]) -> Any:
    if datatype == "multivaluelist":
        return [v for v in values if v != ""]
    value = values[0] if values else ""
    if datatype == "number":
        try:
            return int(value) if re.fullmatch(r"-?\d+", value) else float(value)
        except ValueError:
            return value
    if datatype == "boolean":
        return {"true": True, "false": False}.get(value.lower(), value)
    return value


def _attribute_name(name: str) -> str:
    return f"attribute[{name.removeprefix('answers.')}]"


def _free_text_errors(first: Mapping[str, str]) -> dict[str, list[Any]]:
    errors: dict[str, list[Any]] = {}
    if len(first.get("description", "")) > 4000:
        errors["description"] = [_l("Longer than maximum length %(max)s.", max=4000)]
    media = first.get("media_url", "")
    if media and (len(media) > 2000 or not re.match(r"^https?://\S+$", media)):
        errors["media_url"] = [_l("Not a valid URL.")]
    for name in CONTACT_FIELDS:
        if len(first.get(name, "")) > 254:
            errors[name] = [_l("Longer than maximum length %(max)s.", max=254)]
    return errors


def _create(
    reporter: Principal,
    service: Service,
    version: ServiceVersion,
    answers: dict[str, Any],
    location: dict[str, Any],
    first: Mapping[str, str],
) -> Application:
    now = utcnow()
    contact = {name: first[name] for name in CONTACT_FIELDS if first.get(name)}
    application = Application(
        id=new_id(),
        service_id=service.id,
        service_version_id=version.id,
        department_code=version.department_code,
        reporter_organisation_id=reporter.id,
        status="submitted",
        answers=answers,
        payment_attempts=0,
        submitted_at=now,
        deadline_at=now + timedelta(days=version.processing_days),
        created_at=now,
        updated_at=now,
        description=first.get("description") or None,
        media_url=first.get("media_url") or None,
        contact=contact or None,
        open311_token=secrets.token_hex(16),
        **location,
    )
    db.session.add(application)
    db.session.flush()
    timeline.transition(application, "submitted", reporter, created=True)
    audit.record(
        reporter,
        "application.filed",
        "application",
        application.id,
        after={"service": service.code, "version": version.version, "channel": "open311"},
    )
    return application


# --- reading requests ----------------------------------------------------------------------


def _requests() -> Any:
    return (
        select(Application, Service, ServiceVersion)
        .join(Service, Service.id == Application.service_id)
        .join(ServiceVersion, ServiceVersion.id == Application.service_version_id)
        .where(ServiceVersion.open311.is_(True))
    )


def find_requests(
    ids: str | None,
    service_codes: str | None,
    start: datetime | None,
    end: datetime | None,
    statuses: str | None,
    lang: str,
) -> list[dict[str, Any]]:
    """GET requests: by ids (which overrides everything else), or by service codes, status and
    a window of at most 90 days (the most recent 90 by default); at most 1,000, newest first."""
    query = _requests()
    if ids:
        wanted = [i.strip() for i in ids.split(",") if i.strip()][:MAX_REQUESTS]
        query = query.where(Application.id.in_(wanted))
    else:
        query = _filtered(query, service_codes, start, end, statuses)
    rows = db.session.execute(
        query.order_by(Application.created_at.desc(), Application.id).limit(MAX_REQUESTS)
    )
    return [_request_view(a, s, v, lang) for a, s, v in rows]


def _filtered(
    query: Any,
    service_codes: str | None,
    start: datetime | None,
    end: datetime | None,
    statuses: str | None,
) -> Any:
    if service_codes:
        codes = [c.strip() for c in service_codes.split(",") if c.strip()]
        query = query.where(Service.code.in_(codes))
    end = end or (start + MAX_SPAN if start else utcnow())
    start = start or end - MAX_SPAN
    if start > end or end - start > MAX_SPAN:
        raise BadRequest(
            _l("start_date and end_date may not span more than 90 days."), field="start_date"
        )
    query = query.where(Application.created_at >= start, Application.created_at <= end)
    if statuses:
        wanted = {s.strip() for s in statuses.split(",") if s.strip()}
        if not wanted <= {"open", "closed"}:
            raise BadRequest(_l("status must be open or closed."), field="status")
        if wanted == {"open"}:
            query = query.where(Application.status.not_in(CLOSED))
        elif wanted == {"closed"}:
            query = query.where(Application.status.in_(CLOSED))
    return query


def one_request(request_id: str, lang: str) -> list[dict[str, Any]]:
    """GET requests/{id}: a list of one."""
    row = db.session.execute(_requests().where(Application.id == request_id)).one_or_none()
    if row is None:
        raise NotFound(_l("service_request_id was not found."), field="service_request_id")
    return [_request_view(row[0], row[1], row[2], lang)]


def from_token(token: str) -> list[dict[str, Any]]:
    """GET tokens/{token}: the request a token stands for."""
    row = db.session.execute(_requests().where(Application.open311_token == token)).one_or_none()
    if row is None:
        raise NotFound(_l("token was not found."), field="token")
    return [{"service_request_id": row[0].id, "token": token}]


def _request_view(
    application: Application, service: Service, version: ServiceVersion, lang: str
) -> dict[str, Any]:
    department = db.session.get(Department, application.department_code)
    return {
        "service_request_id": application.id,
        "status": "closed" if application.status in CLOSED else "open",
        "status_notes": application.status_note,
        "service_name": _in(version.name, lang),
        "service_code": service.code,
        "description": application.description,
        "agency_responsible": _in(department.name, lang) if department else None,
        "service_notice": None,
        "requested_datetime": _iso(application.created_at),
        "updated_datetime": _iso(application.updated_at),
        "expected_datetime": _iso(application.deadline_at),
        "address": application.address,
        "address_id": application.address_id,
        "zipcode": None,
        "lat": application.latitude,
        "long": application.longitude,
        "media_url": application.media_url,
    }


def parse_datetime(value: str | None, name: str) -> datetime | None:
    """A w3 datetime with a timezone (``2010-01-01T00:00:00Z``); 400 otherwise."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise BadRequest(_l("Not a valid aware datetime."), field=name)
    return parsed
