"""Uploaded documents: checked by their content, stored outside the database by SHA-256.

A file's type is judged by its first bytes, never by its name or the type the client claims.
Files are written only once everything in the request checked out, and a file this request
wrote is removed again if its rows do not commit, so a refused submission leaves nothing.
"""

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select

from civic.errors import FileTooLarge
from civic.models import ApplicationDocument
from core import db
from core.i18n import _l

_SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)
EXTENSIONS = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}


@dataclass(frozen=True)
class Upload:
    """One file part of a request: the document code it is for, and its bytes."""

    code: str
    filename: str | None
    content: bytes


@dataclass(frozen=True)
class Stored:
    code: str
    sha256: str
    content_type: str
    size: int
    filename: str | None
    written: Path | None  # the file this request wrote (None: the same bytes were stored)


def sniff(content: bytes) -> str | None:
    """The MIME type the content shows (PDF, JPEG, PNG), else None."""
    for signature, mime in _SIGNATURES:
        if content.startswith(signature):
            return mime
    return None


def check_sizes(specs: list[dict[str, Any]], uploads: dict[str, Upload]) -> None:
    """413 for the first file over its document's ``max_bytes``."""
    for spec in specs:
        upload = uploads.get(spec["code"])
        if upload is not None and len(upload.content) > spec["max_bytes"]:
            field = f"documents.{spec['code']}"
            raise FileTooLarge(
                _l("The file is larger than %(max)s bytes.", max=spec["max_bytes"]),
                field=field,
                location="files",
            )


def check_documents(
    specs: list[dict[str, Any]], uploads: dict[str, Upload], *, require: bool = True
) -> dict[str, list[Any]]:
    """Errors keyed ``documents.<code>``: unknown parts, missing required ones (when
    ``require``), empty files and types not allowed (judged by content)."""
    errors: dict[str, list[Any]] = {}
    by_code = {spec["code"]: spec for spec in specs}
    for code in uploads:
        if code not in by_code:
            errors[f"documents.{code}"] = [_l("Unknown document.")]
    for spec in specs:
        upload = uploads.get(spec["code"])
        if upload is None:
            if require and spec["required"]:
                errors[f"documents.{spec['code']}"] = [_l("This document is required.")]
            continue
        if sniff(upload.content) not in spec["types"]:
            errors[f"documents.{spec['code']}"] = [
                _l(
                    "The file's content is not an allowed type (%(types)s).",
                    types=", ".join(spec["types"]),
                )
            ]
    return errors


def store(uploads: dict[str, Upload]) -> list[Stored]:
    """Write each file under its content hash (once); returns what was stored."""
    stored: list[Stored] = []
    try:
        for upload in uploads.values():
            stored.append(_store_one(upload))
    except BaseException:
        for item in stored:
            if item.written is not None:
                item.written.unlink(missing_ok=True)
        raise
    return stored


def _store_one(upload: Upload) -> Stored:
    digest = hashlib.sha256(upload.content).hexdigest()
    path = path_of(digest)
    written = None
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        with os.fdopen(handle, "wb") as file:
            file.write(upload.content)
        os.replace(temporary, path)
        written = path
    return Stored(
        code=upload.code,
        sha256=digest,
        content_type=sniff(upload.content) or "application/octet-stream",
        size=len(upload.content),
        filename=(upload.filename or "")[:255] or None,
        written=written,
    )


def discard(stored: list[Stored]) -> None:
    """Remove the files this request wrote (its rows did not commit), unless a row committed
    meanwhile by another request refers to the same bytes."""
    for item in stored:
        if item.written is None:
            continue
        query = select(ApplicationDocument.id).where(ApplicationDocument.sha256 == item.sha256)
        if db.session.scalars(query.limit(1)).first() is None:
            item.written.unlink(missing_ok=True)


def rows(application_id: str, stored: list[Stored]) -> list[ApplicationDocument]:
    return [
        ApplicationDocument(
            application_id=application_id,
            code=item.code,
            sha256=item.sha256,
            content_type=item.content_type,
            size=item.size,
            filename=item.filename,
        )
        for item in stored
    ]


def path_of(digest: str) -> Path:
    """Where the file with this SHA-256 lives: ``<CIVIC_UPLOAD_DIR>/ab/abcdef…``."""
    return Path(current_app.config["CIVIC_UPLOAD_DIR"]) / digest[:2] / digest
