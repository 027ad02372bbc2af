"""Face enrolment and verification, following "Face verification, the rules" (DESIGN.md).

- Enrolment needs a separate, explicit consent (``consent=true``), whose time is recorded.
- Only the 128-number encoding is kept, AES-GCM encrypted (``FACE_KEY``); the photo lives only
  in this request's memory.
- A photo must show exactly one face; it is scaled down before detection.
- A probe matches when its distance to the template is at most ``FACE_MATCH_THRESHOLD``
  (0.5: stricter than the library's 0.6).
- A probe closer than ``FACE_REPLAY_DISTANCE`` to the enrolment or to any earlier probe is the
  same photo sent again (re-sent or re-saved, not a new capture) and is refused as a replay.
  Every probe's encoding is kept, encrypted, for that comparison, and erased with the template.
- ``FACE_MAX_ATTEMPTS`` mismatches or replays in a row lock face payment for
  ``FACE_LOCK_MINUTES``.

There is no liveness detection: a good enough photo of the citizen's face passes.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from flask import current_app
from sqlalchemy import delete, select

from core import db
from core.clock import utcnow
from core.errors import Conflict, InvalidInput
from core.i18n import _l
from core.inbox import service as inbox
from health import faces
from health.errors import FaceImageInvalid, FaceLocked, FaceMismatch, FaceReplayed, ImageTooLarge
from health.models import FaceProbe, FaceTemplate

_IMAGE_ERRORS = {
    "not_an_image": _l("The file is not an image we can read (JPEG or PNG)."),
    "no_face": _l("No face was found in the photo."),
    "several_faces": _l("Several faces are in the photo; only yours may be."),
}


# --- the cipher and the photo ------------------------------------------------------------


def cipher() -> faces.FaceCipher:
    """The AES-GCM cipher of ``FACE_KEY``, or of the development key in ``instance/``."""
    extensions = current_app.extensions
    if "health_face_cipher" not in extensions:
        configured = current_app.config["FACE_KEY"]
        if configured:
            key = faces.parse_key(configured)
        else:
            key = faces.development_key(Path(current_app.instance_path) / "face.key")
        extensions["health_face_cipher"] = faces.FaceCipher(key)
    return extensions["health_face_cipher"]


def probe_of(image: bytes) -> np.ndarray:
    """The encoding of the one face in ``image``; 413 when too large, 422 otherwise."""
    if len(image) > current_app.config["FACE_MAX_UPLOAD_BYTES"]:
        raise ImageTooLarge(_l("The photo is too large."))
    try:
        found = faces.encode(image, current_app.config["FACE_DETECTION_MAX_SIDE"])
    except faces.FaceImageError as error:
        raise FaceImageInvalid(_IMAGE_ERRORS[error.reason], error.reason) from None
    return found.encoding


def _template_context(user_id: str) -> str:
    return f"health-face-template:{user_id}"


def _probe_context(user_id: str) -> str:
    return f"health-face-probe:{user_id}"


# --- enrolment ---------------------------------------------------------------------------


def status(user_id: str) -> dict[str, Any]:
    """Whether a face is enrolled, since when, and whether face payment is locked."""
    template = db.session.get(FaceTemplate, user_id)
    if template is None:
        return {"enrolled": False, "attempts_left": 0}
    locked = template.locked_until is not None and template.locked_until > utcnow()
    return {
        "enrolled": True,
        "enrolled_at": template.enrolled_at,
        "consented_at": template.consented_at,
        "locked_until": template.locked_until if locked else None,
        "attempts_left": 0 if locked else _attempts_left(template),
    }


def enrol(user_id: str, image: bytes, consent: bool) -> dict[str, Any]:
    """Enrol (or replace) the citizen's face with their explicit consent."""
    if consent is not True:
        raise InvalidInput(
            _l("Enrolment needs your explicit consent (consent=true)."),
            field="consent",
            location="form",
        )
    existing = db.session.get(FaceTemplate, user_id)
    if existing is not None:
        _refuse_if_locked(existing)  # a lock must not be escaped by enrolling another face
    db.end_read_transaction()  # hold nothing while the photo is analysed
    encoding = probe_of(image)
    now = utcnow()
    template = db.session.get(FaceTemplate, user_id) or FaceTemplate(user_id=user_id)
    template.encoding = cipher().seal(encoding, _template_context(user_id))
    template.consented_at, template.enrolled_at = now, now
    template.failed_attempts, template.locked_until = 0, None
    db.session.add(template)
    inbox.notify(
        user_id,
        "health_face_enrolled",
        _l("Face enrolled for payments"),
        _l(
            "Your face was enrolled to confirm hospital bill payments. If this was not you, "
            "delete it in the app."
        ),
    )
    db.session.commit()
    return status(user_id)


def erase(user_id: str) -> None:
    """Delete the template and every kept probe: face payment is closed until re-enrolment."""
    db.session.execute(delete(FaceProbe).where(FaceProbe.user_id == user_id))
    db.session.execute(delete(FaceTemplate).where(FaceTemplate.user_id == user_id))
    db.session.commit()


# --- verification ------------------------------------------------------------------------


def verify(user_id: str, image: bytes) -> None:
    """Confirm that ``image`` shows the enrolled citizen, or raise (403, 422, 423).

    A failure is committed (attempts count, probe kept for replay checks) before it is raised.
    """
    template = _template_or_refuse(user_id)
    _refuse_if_locked(template)
    db.end_read_transaction()  # hold nothing while the photo is analysed
    encoding = probe_of(image)
    template = _locked_template(user_id)
    _refuse_if_locked(template, reset=True)
    enrolled = cipher().open(template.encoding, _template_context(user_id))
    replayed = _is_replay(user_id, encoding, enrolled)
    db.session.add(
        FaceProbe(user_id=user_id, encoding=cipher().seal(encoding, _probe_context(user_id)))
    )
    if replayed:
        _fail(template)
        raise FaceReplayed(
            _l("This photo was already used; take a new one."),
            attempts_left=_attempts_left(template),
        )
    if faces.distance(encoding, enrolled) > current_app.config["FACE_MATCH_THRESHOLD"]:
        _fail(template)
        raise FaceMismatch(
            _l("The face does not match the enrolled one."),
            attempts_left=_attempts_left(template),
        )
    template.failed_attempts = 0
    db.session.commit()


def _template_or_refuse(user_id: str) -> FaceTemplate:
    template = db.session.get(FaceTemplate, user_id)
    if template is None:
        raise Conflict(_l("Enrol your face first."), field="image")
    return template


def _locked_template(user_id: str) -> FaceTemplate:
    template = db.session.scalars(
        select(FaceTemplate)
        .where(FaceTemplate.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if template is None:  # erased while the photo was analysed
        raise Conflict(_l("Enrol your face first."), field="image")
    return template


def _refuse_if_locked(template: FaceTemplate, *, reset: bool = False) -> None:
    """423 while locked; with ``reset``, a lock that has run out is cleared (a write)."""
    now = utcnow()
    until = template.locked_until
    if until is None:
        return
    if until > now:
        raise FaceLocked(
            _l("Face payment is locked after too many failed attempts."),
            unlocks_at=until,
            retry_after=int((until - now).total_seconds()) + 1,
        )
    if reset:
        template.locked_until, template.failed_attempts = None, 0


def _is_replay(user_id: str, encoding: np.ndarray, enrolled: np.ndarray) -> bool:
    epsilon = current_app.config["FACE_REPLAY_DISTANCE"]
    if faces.distance(encoding, enrolled) < epsilon:
        return True
    sealed = db.session.scalars(select(FaceProbe.encoding).where(FaceProbe.user_id == user_id))
    context = _probe_context(user_id)
    return any(faces.distance(encoding, cipher().open(s, context)) < epsilon for s in sealed)


def _fail(template: FaceTemplate) -> None:
    """Count a failed attempt, lock at the maximum, and commit (the caller then raises)."""
    template.failed_attempts += 1
    if template.failed_attempts >= current_app.config["FACE_MAX_ATTEMPTS"]:
        minutes = current_app.config["FACE_LOCK_MINUTES"]
        template.locked_until = utcnow() + timedelta(minutes=minutes)
    db.session.commit()


def _attempts_left(template: FaceTemplate) -> int:
    most = current_app.config["FACE_MAX_ATTEMPTS"]
    if template.locked_until is not None and template.locked_until <= utcnow():
        return most  # the lock has run out: the count starts again
    return max(0, most - template.failed_attempts)
