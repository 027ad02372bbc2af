"""Departments and the service catalog: drafts, versions, publishing, search.

A service's content lives in versions. The first version is a draft; publishing puts the latest
version in front of citizens; editing a published service makes the next version (a draft until
it is published), so a published version never changes and an application keeps its own.
"""

import re
import unicodedata
from typing import Any

from flask import current_app
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from civic.models import Department, Service, ServiceVersion
from core import db
from core.audit import service as audit
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import Conflict, InvalidInput, NotFound
from core.i18n import _l
from core.money import check_amount

DATATYPES = (
    "string",
    "text",
    "number",
    "date",
    "datetime",
    "email",
    "phone",
    "boolean",
    "singlevaluelist",
    "multivaluelist",
)
LIST_DATATYPES = ("singlevaluelist", "multivaluelist")
DOCUMENT_TYPES = ("application/pdf", "image/jpeg", "image/png")
CONTENT_KEYS = (
    "category",
    "department",
    "name",
    "description",
    "keywords",
    "fee",
    "processing_days",
    "documents",
    "fields",
    "open311",
)
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
MAX_TERMS = 8

# --- departments ---------------------------------------------------------------------------


def create_department(code: str, name: dict[str, str], actor: Principal | None) -> Department:
    """Add a department (audited); 409 when the code is taken."""
    department = Department(code=code, name=name, created_at=utcnow())
    db.session.add(department)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_l("A department with this code already exists."), field="code") from None
    audit.record(actor, "department.created", "department", code, after={"name": name})
    db.session.commit()
    return department


def list_departments() -> list[Department]:
    return list(db.session.scalars(select(Department).order_by(Department.code)))


def department_names(code: str) -> dict[str, str]:
    department = db.session.get(Department, code)
    return department.name if department else {}


# --- writing the catalog -------------------------------------------------------------------


def _by(actor: Principal | None) -> str:
    """Who made a version: an administrator, or ``cli`` (an operator seeding at a shell)."""
    return actor.actor if actor else "cli"


def create_service(code: str, content: dict[str, Any], actor: Principal | None) -> dict[str, Any]:
    """Create a service as a draft (version 1); audited. 409 when the code is taken."""
    version = ServiceVersion(version=1, created_by=_by(actor), created_at=utcnow())
    _apply_content(version, content)
    service = Service(code=code, status="draft", latest_version=1, updated_at=utcnow())
    db.session.add(service)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_l("A service with this code already exists."), field="code") from None
    version.service_id = service.id
    db.session.add(version)
    db.session.flush()
    audit.record(actor, "service.created", "service", code, after=definition(service, version))
    db.session.commit()
    return definition(service, version)


def update_service(code: str, changes: dict[str, Any], actor: Principal) -> dict[str, Any]:
    """Change a service's content (audited). A draft is edited in place; a published version is
    left as it is and the change becomes the next version, a draft until published."""
    service = _service_for_update(code)
    latest = _version(service, service.latest_version)
    before = definition(service, latest)
    if latest.published_at is not None:
        latest = _next_version(service, latest, actor)
    merged = {**content_of(latest), **changes}
    _apply_content(latest, merged)
    service.updated_at = utcnow()
    db.session.flush()
    after = definition(service, latest)
    audit.record(actor, "service.updated", "service", code, before=before, after=after)
    db.session.commit()
    return after


def publish_service(code: str, actor: Principal | None) -> dict[str, Any]:
    """Put the latest version in front of citizens (audited); 409 if it already is."""
    service = _service_for_update(code)
    latest = _version(service, service.latest_version)
    if service.status == "published" and service.published_version == latest.version:
        raise Conflict(_l("The latest version is already published."))
    before = {"status": service.status, "published_version": service.published_version}
    latest.published_at = latest.published_at or utcnow()
    service.status, service.published_version = "published", latest.version
    service.updated_at = utcnow()
    after = {"status": "published", "published_version": latest.version}
    audit.record(actor, "service.published", "service", code, before=before, after=after)
    db.session.commit()
    return definition(service, latest)


def retire_service(code: str, actor: Principal) -> dict[str, Any]:
    """Take a service out of the catalog (audited); applications already made go on."""
    service = _service_for_update(code)
    if service.status == "retired":
        raise Conflict(_l("The service is already retired."))
    before = {"status": service.status}
    service.status, service.updated_at = "retired", utcnow()
    audit.record(
        actor, "service.retired", "service", code, before=before, after={"status": "retired"}
    )
    db.session.commit()
    return definition(service, _version(service, service.latest_version))


def _service_for_update(code: str) -> Service:
    service = db.session.scalars(
        select(Service).where(Service.code == code).with_for_update()
    ).one_or_none()
    if service is None:
        raise NotFound(_l("No such service."))
    return service


def _version(service: Service, number: int) -> ServiceVersion:
    return db.session.scalars(
        select(ServiceVersion).where(
            ServiceVersion.service_id == service.id, ServiceVersion.version == number
        )
    ).one()


def _next_version(service: Service, latest: ServiceVersion, actor: Principal) -> ServiceVersion:
    following = ServiceVersion(
        service_id=service.id,
        version=latest.version + 1,
        created_by=_by(actor),
        created_at=utcnow(),
    )
    _apply_content(following, content_of(latest))
    db.session.add(following)
    service.latest_version = following.version
    return following


def content_of(version: ServiceVersion) -> dict[str, Any]:
    """A version's content as the API takes it."""
    fee = None
    if version.fee_amount is not None:
        fee = {"amount": version.fee_amount, "currency": version.fee_currency}
    return {
        "category": version.category,
        "department": version.department_code,
        "name": version.name,
        "description": version.description,
        "keywords": version.keywords,
        "fee": fee,
        "processing_days": version.processing_days,
        "documents": version.documents,
        "fields": version.fields,
        "open311": version.open311,
    }


def _apply_content(version: ServiceVersion, content: dict[str, Any]) -> None:
    """Check a service's content as a whole and write it into ``version``."""
    _check_content(content)
    fee = content.get("fee")
    version.category = content["category"]
    version.department_code = content["department"]
    version.name = content["name"]
    version.description = content["description"]
    version.keywords = list(content.get("keywords") or [])
    version.fee_amount = fee["amount"] if fee else None
    version.fee_currency = fee["currency"].upper() if fee else None
    version.processing_days = content["processing_days"]
    version.documents = list(content.get("documents") or [])
    version.fields = list(content.get("fields") or [])
    version.open311 = bool(content.get("open311"))
    version.search_text = search_text(content)


def _check_content(content: dict[str, Any]) -> None:
    if db.session.get(Department, content["department"]) is None:
        raise InvalidInput(_l("No such department."), field="department")
    fee = content.get("fee")
    if fee:
        check_amount(fee["amount"], fee["currency"], current_app.config["PAYMENT_MAX_AMOUNT"])
    _check_fields(content.get("fields") or [])
    _check_documents(content.get("documents") or [])
    if content.get("open311") and (
        fee or any(d["required"] for d in content.get("documents") or [])
    ):
        raise InvalidInput(
            _l("An Open311 service can have neither a fee nor required documents."),
            field="open311",
        )


def _check_fields(fields: list[dict[str, Any]]) -> None:
    codes = [f["code"] for f in fields]
    if len(set(codes)) != len(codes):
        raise InvalidInput(_l("Codes must be unique."), field="fields")
    for field in fields:
        _check_field(field)


def _check_field(field: dict[str, Any]) -> None:
    if not _CODE.match(field["code"]):
        raise InvalidInput(
            _l("A code starts with a letter and has letters, digits or '_'."), field="fields"
        )
    datatype = field["datatype"]
    values = field.get("values")
    if (datatype in LIST_DATATYPES) != bool(values):
        raise InvalidInput(_l("Lists, and only lists, have values."), field="fields")
    if values and len({v["key"] for v in values}) != len(values):
        raise InvalidInput(_l("Codes must be unique."), field="fields")
    has_range = field.get("min") is not None or field.get("max") is not None
    if has_range and datatype != "number":
        raise InvalidInput(_l("Only numbers have a min or a max."), field="fields")
    if None not in (field.get("min"), field.get("max")) and field["min"] > field["max"]:
        raise InvalidInput(_l("A min must not be above its max."), field="fields")
    shaped = field.get("pattern") is not None or field.get("max_length") is not None
    if shaped and datatype not in ("string", "text"):
        raise InvalidInput(_l("Only text has a pattern or a max_length."), field="fields")
    if field.get("pattern") is not None:
        try:
            re.compile(field["pattern"])
        except re.error:
            raise InvalidInput(_l("Not a valid pattern."), field="fields") from None


def _check_documents(documents: list[dict[str, Any]]) -> None:
    codes = [d["code"] for d in documents]
    if len(set(codes)) != len(codes):
        raise InvalidInput(_l("Codes must be unique."), field="documents")
    ceiling = current_app.config["CIVIC_UPLOAD_MAX_BYTES"]
    for document in documents:
        if not _CODE.match(document["code"]):
            raise InvalidInput(
                _l("A code starts with a letter and has letters, digits or '_'."),
                field="documents",
            )
        if document["max_bytes"] > ceiling:
            raise InvalidInput(
                _l("Must be less than or equal to %(max)s.", max=ceiling), field="documents"
            )


# --- searching -----------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Text as search compares it: NFKC (full-width forms folded), case-folded, one space."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def search_text(content: dict[str, Any]) -> str:
    """Every name, description and keyword, in every language, normalised; each also without
    spaces, so that a query typed with or without spaces finds a compound either way."""
    parts = [*content["name"].values(), *content["description"].values()]
    parts += [*(content.get("keywords") or []), content["category"]]
    spaced = [normalise(part) for part in parts]
    compact = [part.replace(" ", "") for part in spaced]
    return "\n".join(spaced + compact)


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def published() -> Select[tuple[Service, ServiceVersion]]:
    """Published services, each with the version citizens see."""
    return (
        select(Service, ServiceVersion)
        .join(
            ServiceVersion,
            (ServiceVersion.service_id == Service.id)
            & (ServiceVersion.version == Service.published_version),
        )
        .where(Service.status == "published")
    )


def search(
    q: str | None, category: str | None, lang: str, page: int, page_size: int
) -> tuple[list[dict[str, Any]], int]:
    """Published services matching every word of ``q`` (a part of a word is enough, in any of
    the three languages), in ``category``; one page of them in ``lang`` and the total."""
    query = published()
    if category:
        query = query.where(ServiceVersion.category == category)
    for term in normalise(q or "").split()[:MAX_TERMS]:
        query = query.where(ServiceVersion.search_text.like(_like(term), escape="\\"))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.execute(
        query.order_by(Service.code).limit(page_size).offset((page - 1) * page_size)
    )
    return [localised(service, version, lang) for service, version in rows], int(total)


def get_published(code: str) -> tuple[Service, ServiceVersion]:
    """A published service and its current version; 404 otherwise."""
    row = db.session.execute(published().where(Service.code == code)).one_or_none()
    if row is None:
        raise NotFound(_l("No such service."))
    return row[0], row[1]


def show(code: str, lang: str) -> dict[str, Any]:
    """A published service's current version, in ``lang``."""
    service, version = get_published(code)
    return localised(service, version, lang)


# --- views ---------------------------------------------------------------------------------


def _in(text: dict[str, str], lang: str) -> str:
    return text.get(lang) or next(iter(text.values()), "")


def localised(service: Service, version: ServiceVersion, lang: str) -> dict[str, Any]:
    """What a citizen sees of a service version, in ``lang``."""
    content = content_of(version)
    return {
        **content,
        "code": service.code,
        "version": version.version,
        "lang": lang,
        "name": _in(version.name, lang),
        "description": _in(version.description, lang),
        "department": {
            "code": version.department_code,
            "name": _in(department_names(version.department_code), lang),
        },
        "documents": [{**d, "label": _in(d["label"], lang)} for d in version.documents],
        "fields": [_localised_field(f, lang) for f in version.fields],
        "published_at": version.published_at,
    }


def _localised_field(field: dict[str, Any], lang: str) -> dict[str, Any]:
    shown = {**field, "label": _in(field["label"], lang)}
    if field.get("values"):
        shown["values"] = [{"key": v["key"], "name": _in(v["name"], lang)} for v in field["values"]]
    return shown


def definition(service: Service, version: ServiceVersion) -> dict[str, Any]:
    """A service version as administrators write it (every language), with its status."""
    return {
        "code": service.code,
        "status": service.status,
        "version": version.version,
        "latest_version": service.latest_version,
        "published_version": service.published_version,
        **content_of(version),
    }
