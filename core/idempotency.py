"""Idempotent POSTs: the ``Idempotency-Key`` header.

The first request with a key claims it (a committed ``in_progress`` row, unique per caller and
key), runs, and stores its response. A replay with the same request gets the stored response
and ``Idempotent-Replayed: true``; the same key with a different request is 422; a duplicate
arriving while the first still runs is 409. A request that fails with an exception or a 5xx
releases its key, so the client may retry. Keys expire after ``IDEMPOTENCY_TTL_HOURS``.
"""

import hashlib
from collections.abc import Callable
from copy import deepcopy
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, g, make_response, request
from sqlalchemy import JSON, Integer, String, Text, UniqueConstraint, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from core import db
from core.clock import utcnow
from core.db import Base, UTCDateTime
from core.errors import Conflict, InvalidInput
from core.i18n import _l
from core.ids import new_id

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# A claim older than this whose request never finished (a killed worker) may be taken over.
ABANDONED_AFTER = timedelta(minutes=5)
_KEPT_HEADERS = ("Content-Type", "Location", "X-Pagination")

F = TypeVar("F", bound=Callable[..., Any])


class IdempotencyRecord(Base):
    """A claimed key and, once the request finished, the response it produced."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    scope: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSON)


def idempotent(view: F) -> F:
    """Make a POST view honour ``Idempotency-Key`` (place it under ``@requires``)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= 255:
            length = _l("Length must be between %(min)s and %(max)s.", min=1, max=255)
            raise InvalidInput(length, field=HEADER, location="headers")
        scope, fingerprint = _scope(), _fingerprint()
        existing = _claim(scope, key, fingerprint)
        if existing is not None:
            return _replay(existing, fingerprint)
        return _run_and_store(view, args, kwargs, scope, key)

    apidoc = deepcopy(getattr(wrapper, "_apidoc", {}))
    parameters = apidoc.setdefault("manual_doc", {}).setdefault("parameters", [])
    parameters.append(
        {
            "in": "header",
            "name": HEADER,
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": "Makes the request safe to retry: a replay returns the first response.",
        }
    )
    wrapper._apidoc = apidoc  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _scope() -> str:
    principal = g.get("principal")
    return principal.actor if principal is not None else f"anonymous:{request.remote_addr}"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.query_string.decode(), ""):
        digest.update(part.encode() + b"\0")
    if request.mimetype == "multipart/form-data":
        _digest_parts(digest)
    else:
        digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _digest_parts(digest: "hashlib._Hash") -> None:
    """A multipart body's boundary is random on every send: a retry of the same submission
    must still match, so compare its parts (fields, file names and contents), not its bytes."""
    for name, value in sorted(request.form.items(multi=True)):
        digest.update(f"{name}={value}".encode() + b"\0")
    for name, part in sorted(request.files.items(multi=True), key=lambda item: item[0]):
        content = part.stream.read()
        part.stream.seek(0)
        digest.update(f"{name}:{part.filename}:".encode() + hashlib.sha256(content).digest())


def _claim(scope: str, key: str, fingerprint: str) -> IdempotencyRecord | None:
    """Claim the key (and commit) or return the record that already holds it."""
    db.session.commit()  # end the read transaction authentication opened
    db.session.add(IdempotencyRecord(scope=scope, key=key, request_hash=fingerprint))
    try:
        db.session.commit()
        return None
    except IntegrityError:
        db.session.rollback()
    query = select(IdempotencyRecord).where(
        IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
    )
    existing = db.session.scalars(query).one()
    db.session.commit()  # end the read: the takeover below is its own short transaction
    abandoned = existing.completed_at is None and utcnow() - existing.created_at > ABANDONED_AFTER
    if abandoned and existing.request_hash == fingerprint and _take_over(existing):
        return None
    # A different request under the key is a 422 even when the claim was abandoned; a takeover
    # lost to another retry reads as still in progress (409).
    return existing


def _take_over(record: IdempotencyRecord) -> bool:
    """Take over an abandoned claim (its worker died) with a compare-and-set on the claim time
    we saw: of several retries racing for it, exactly one wins. The request hash stays the
    original's, so the key still refuses a different request."""
    taken = db.session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.id == record.id,
            IdempotencyRecord.completed_at.is_(None),
            IdempotencyRecord.created_at == record.created_at,
        )
        .values(created_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return int(taken.rowcount) == 1  # type: ignore[attr-defined]


def _replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.request_hash != fingerprint:
        raise InvalidInput(
            _l("This Idempotency-Key was already used with a different request."),
            field=HEADER,
            location="headers",
        )
    if record.completed_at is None:
        raise Conflict(_l("A request with this Idempotency-Key is still being processed."))
    response = Response(record.response_body, status=record.response_status)
    response.headers.update(record.response_headers or {})
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _run_and_store(
    view: Callable[..., Any], args: Any, kwargs: Any, scope: str, key: str
) -> Response:
    try:
        response = make_response(view(*args, **kwargs))
    except BaseException:
        _release(scope, key)
        raise
    if response.status_code >= 500 or response.status_code in (409, 429):
        _release(scope, key)  # transient: the client may retry with the same key
        return response
    record = db.session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
        )
    ).one()
    record.completed_at = utcnow()
    record.response_status = response.status_code
    record.response_body = response.get_data(as_text=True)
    record.response_headers = {
        h: response.headers[h] for h in _KEPT_HEADERS if h in response.headers
    }
    db.session.commit()
    return response


def _release(scope: str, key: str) -> None:
    db.session.rollback()
    db.session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
        )
    )
    db.session.commit()


def sweep_expired_keys() -> int:
    """Delete keys older than the TTL; returns how many (a scheduled job)."""
    cutoff = utcnow() - timedelta(hours=current_app.config["IDEMPOTENCY_TTL_HOURS"])
    result = db.session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
    )
    db.session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
