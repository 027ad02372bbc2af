"""Check-in codes: what the app shows as a QR code and the hospital's desk scans.

A code is ``<random>.<signature>``: the random part names a stored row (who, until when, used
or not) and the signature, an HMAC with ``SECRET_KEY`` over the random part, the citizen and
the expiry, proves the server issued it for that citizen. A code works for
``CHECKIN_CODE_MINUTES`` and once.
"""

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, update

from core import db
from core.clock import utcnow
from core.errors import InvalidInput
from core.i18n import _l
from health.models import CheckinCode

_PURPOSE = b"health-checkin"


def _signature(token: str, user_id: str, expires_at: datetime) -> str:
    message = b"|".join(
        (_PURPOSE, token.encode(), user_id.encode(), str(int(expires_at.timestamp())).encode())
    )
    key = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def issue(user_id: str) -> dict[str, Any]:
    """A new code for the citizen: ``{code, expires_at}``."""
    now = utcnow()
    expires_at = (now + timedelta(minutes=current_app.config["CHECKIN_CODE_MINUTES"])).replace(
        microsecond=0
    )
    token = secrets.token_urlsafe(12)
    db.session.add(CheckinCode(id=token, user_id=user_id, issued_at=now, expires_at=expires_at))
    db.session.commit()
    return {"code": f"{token}.{_signature(token, user_id, expires_at)}", "expires_at": expires_at}


def redeem(code: str) -> str:
    """Use a code (in the caller's transaction) and return whose it is; 422 otherwise."""
    token, _, signature = code.strip().partition(".")
    row = db.session.get(CheckinCode, token) if token and signature else None
    expected = _signature(token, row.user_id, row.expires_at) if row is not None else ""
    if row is None or not hmac.compare_digest(signature, expected) or row.expires_at <= utcnow():
        raise InvalidInput(
            _l("This check-in code is not valid or has expired."), field="checkin_code"
        )
    claimed = db.session.execute(
        update(CheckinCode)
        .where(CheckinCode.id == token, CheckinCode.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidInput(_l("This check-in code has already been used."), field="checkin_code")
    return row.user_id


def purge_expired() -> int:
    """Forget codes that expired more than a day ago (the ``health.purge_checkin_codes`` job)."""
    cutoff = utcnow() - timedelta(days=1)
    result = db.session.execute(delete(CheckinCode).where(CheckinCode.expires_at < cutoff))
    db.session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
