"""Accounts, login sessions, tokens, organisations and API keys: the rules."""

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from zxcvbn import zxcvbn

from core import db
from core.audit import service as audit
from core.auth.models import ORG_KINDS, ROLES, ApiKey, AuthSession, Organisation, RefreshToken, User
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from core.i18n import _l

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a login takes as long either way.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
API_KEY_PREFIX = "ck"
_API_KEY_PREFIX = re.compile(r"[0-9a-f]{12}")  # secrets.token_hex(6), see issue_api_key
JWT_ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


@dataclass(frozen=True)
class IssuedKey:
    """A new API key: ``secret`` is shown once and never stored."""

    key: ApiKey
    secret: str


# --- users -------------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(
    *,
    email: str,
    password: str,
    name: str,
    role: str = "citizen",
    phone: str | None = None,
    department_code: str | None = None,
    locale: str | None = None,
    actor: Principal | None = None,
) -> User:
    """Create an account; 409 when the email is taken, 422 for a bad role or department."""
    if role not in ROLES:
        raise InvalidInput(
            _l("Must be one of: %(choices)s.", choices=", ".join(ROLES)), field="role"
        )
    if role == "official" and not department_code:
        raise InvalidInput(_l("An official must be bound to a department."), field="department")
    user = User(
        email=normalise_email(email),
        password_hash=_hasher.hash(password),
        name=name.strip(),
        phone=phone,
        role=role,
        department_code=department_code if role == "official" else None,
        locale=locale,
    )
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_l("An account with this email already exists."), field="email") from None
    if actor is not None or role != "citizen":  # self-registration is not an audited change
        audit.record(actor, "user.created", "user", user.id, after=user_view(user))
    db.session.commit()
    return user


def register_citizen(
    *, email: str, password: str, name: str, phone: str | None = None, locale: str | None = None
) -> User:
    """Self-registration: a citizen account whose password is not easily guessed."""
    check_password(password, email=email, name=name)
    return create_user(email=email, password=password, name=name, phone=phone, locale=locale)


def check_password(password: str, *, email: str, name: str | None = None) -> None:
    """Refuse the email (or the part before ``@``) as password, one character repeated, and
    anything zxcvbn scores below ``PASSWORD_MIN_SCORE`` (common passwords, keyboard walks, words
    with substitutions, the user's own name); 422 naming ``password``."""
    lowered = password.strip().lower()
    address = normalise_email(email)
    if lowered in {address, address.partition("@")[0]}:
        raise InvalidInput(_l("The password must not be your email address."), field="password")
    if len(set(password)) <= 1:
        raise InvalidInput(_l("The password must not be one character repeated."), field="password")
    # zxcvbn's time grows with the length; the first 64 characters say enough about strength.
    hints = [address, address.partition("@")[0], *([name] if name else [])]
    strength = zxcvbn(password[:64], user_inputs=hints)
    if strength["score"] < current_app.config["PASSWORD_MIN_SCORE"]:
        raise InvalidInput(
            _l("This password is too easy to guess; choose a longer or less common one."),
            field="password",
        )


def user_view(user: User) -> dict[str, Any]:
    """What the audit trail keeps of a user (never the password hash)."""
    return {"email": user.email, "role": user.role, "department": user.department_code}


def get_user(user_id: str) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(_l("No such user."))
    return user


def login(email: str, password: str) -> TokenPair:
    """Check the password and open a login session; 401 on any mismatch."""
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None or not user.is_active:
        _verify_password(_DUMMY_HASH, password)
        raise Unauthorized(_l("Email or password is wrong."))
    if not _verify_password(user.password_hash, password):
        raise Unauthorized(_l("Email or password is wrong."))
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    auth_session = AuthSession(user_id=user.id)
    db.session.add(auth_session)
    db.session.flush()
    pair = _issue_pair(user, auth_session)
    db.session.commit()
    return pair


def _verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# --- tokens ------------------------------------------------------------------------------


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _issue_pair(user: User, auth_session: AuthSession) -> TokenPair:
    secret = secrets.token_urlsafe(32)
    days = current_app.config["REFRESH_TOKEN_DAYS"]
    token = RefreshToken(
        session_id=auth_session.id,
        token_hash=_sha256(secret),
        expires_at=utcnow() + timedelta(days=days),
    )
    db.session.add(token)
    db.session.flush()
    minutes = current_app.config["ACCESS_TOKEN_MINUTES"]
    return TokenPair(
        access_token=_access_token(user, auth_session.id, minutes),
        refresh_token=f"{token.id}.{secret}",
        expires_in=minutes * 60,
    )


def _access_token(user: User, session_id: str, minutes: int) -> str:
    now = utcnow()
    claims = {
        "sub": user.id,
        "sid": session_id,
        "role": user.role,
        "typ": "access",
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, current_app.config["JWT_SECRET_KEY"], algorithm=JWT_ALGORITHM)


def refresh(refresh_token: str) -> TokenPair:
    """Rotate a refresh token. A token used twice revokes its whole family (a stolen copy)."""
    token_id, _, secret = refresh_token.partition(".")
    token = db.session.get(RefreshToken, token_id) if token_id and secret else None
    if token is None or not hmac.compare_digest(token.token_hash, _sha256(secret)):
        raise Unauthorized(_l("Refresh token is not valid."))
    auth_session = token.session
    if auth_session.revoked_at is not None:
        raise Unauthorized(_l("This login session has ended; log in again."))
    if token.expires_at <= utcnow():
        raise Unauthorized(_l("Refresh token has expired; log in again."))
    # Claim the token atomically so two concurrent uses cannot both succeed.
    claimed = db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        _revoke_session(auth_session, "refresh_token_reuse")
        db.session.commit()
        raise Unauthorized(
            _l("Refresh token was already used; every token of this login is revoked.")
        )
    pair = _issue_pair(get_user(auth_session.user_id), auth_session)
    db.session.commit()
    return pair


def logout(principal: Principal) -> None:
    """End the caller's login session: its refresh and access tokens stop working at once."""
    if principal.session_id is None:
        return
    auth_session = db.session.get(AuthSession, principal.session_id)
    if auth_session is not None and auth_session.revoked_at is None:
        _revoke_session(auth_session, "logout")
        db.session.commit()


def _revoke_session(auth_session: AuthSession, reason: str) -> None:
    auth_session.revoked_at = utcnow()
    auth_session.revoked_reason = reason


# Built once (with bound parameters): constructing the statement cost more than running it.
_LIVE_SESSION = (
    select(User.id, User.name, User.role, User.department_code, User.email, User.locale)
    .join(AuthSession, AuthSession.user_id == User.id)
    .where(
        AuthSession.id == bindparam("session_id"),
        AuthSession.user_id == bindparam("user_id"),
        AuthSession.revoked_at.is_(None),
        User.is_active.is_(True),
    )
)
_LIVE_KEY = (
    select(
        ApiKey.key_hash, ApiKey.revoked_at, Organisation.id, Organisation.name, Organisation.kind
    )
    .join(Organisation, Organisation.id == ApiKey.organisation_id)
    .where(ApiKey.prefix == bindparam("prefix"))
)


def principal_from_access_token(token: str) -> Principal:
    """Verify a Bearer token and load its live session and user in one indexed query; 401
    otherwise. The session must belong to the token's subject (``sid`` with another user's
    ``sub`` is refused), be unrevoked, and its user active: nothing is cached across requests,
    so logout, refresh-token reuse and deactivation take effect on the next request."""
    claims = _verified_claims(token, current_app.config["JWT_SECRET_KEY"])
    user_id, session_id = claims["sub"], claims["sid"]
    if claims.get("typ") != "access" or not _is_id(user_id) or not _is_id(session_id):
        raise Unauthorized(_l("Access token is not valid."))
    with db.read_only_connection() as connection:
        row = connection.execute(
            _LIVE_SESSION, {"session_id": session_id, "user_id": user_id}
        ).first()
    if row is None:
        raise Unauthorized(_l("This login session has ended; log in again."))
    return Principal(
        kind="user",
        id=row.id,
        name=row.name,
        role=row.role,
        department=row.department_code,
        session_id=session_id,
        email=row.email,
        locale=row.locale,
    )


# An access token as _access_token writes it (PyJWT): three base64url segments, no padding.
_COMPACT_JWS = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_HEADER_KEYS = frozenset({"alg", "typ"})


def _verified_claims(token: str, key: str) -> dict[str, Any]:
    """The claims of one of our HS256 access tokens, checked as PyJWT's ``decode`` would with
    ``require=["exp", "iat", "sub", "sid"]``; 401 otherwise.

    Done here rather than by PyJWT, which still signs them: its decoder tested each character
    of the token in Python (some 360 function calls, a fifth of an authenticated request) and
    prepared the key again for every token. Only our own shape is accepted: the header says
    HS256 and nothing else that matters (no ``crit``, no ``kid``), the signature is compared in
    constant time before anything of the payload is read, and exp, iat (and nbf, if present)
    are numbers checked against now, without leeway.
    """
    invalid = Unauthorized(_l("Access token is not valid."))
    match = _COMPACT_JWS.fullmatch(token) if token.isascii() else None
    if match is None:
        raise invalid
    header_segment, payload_segment, signature_segment = match.groups()
    try:
        signature = _b64url(signature_segment)
    except ValueError:
        raise invalid from None
    # The signature first: nothing a stranger wrote is parsed (deeply nested JSON in a forged
    # header would otherwise reach json.loads).
    signed = f"{header_segment}.{payload_segment}".encode()
    expected = hmac.new(key.encode(), signed, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise invalid
    try:
        header = json.loads(_b64url(header_segment))
        claims = json.loads(_b64url(payload_segment))
    except (ValueError, RecursionError):
        raise invalid from None
    if not isinstance(header, dict) or header.get("alg") != JWT_ALGORITHM:
        raise invalid
    if not header.keys() <= _HEADER_KEYS or header.get("typ", "JWT") != "JWT":
        raise invalid
    if not isinstance(claims, dict) or not {"exp", "iat", "sub", "sid"} <= claims.keys():
        raise invalid
    times = [claims["exp"], claims["iat"], claims.get("nbf", 0)]
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in times):
        raise invalid
    now = utcnow().timestamp()
    if claims["exp"] <= now:
        raise Unauthorized(_l("Access token has expired."))
    if claims["iat"] > now or claims.get("nbf", 0) > now:
        raise invalid  # issued in the future: not one of ours
    return claims


def _b64url(segment: str) -> bytes:
    """Strict base64url without padding (``binascii`` refuses what is not base64)."""
    if len(segment) % 4 == 1:
        raise ValueError("not base64url")
    decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != segment.encode():
        raise ValueError("not canonical base64url")  # trailing bits set: another token's text
    return decoded


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 36 and value.isprintable()


def deactivate_user(email: str, actor: Principal | None = None) -> int:
    """Deactivate an account and end every login session of it at once: its access and refresh
    tokens stop working on their next use. Returns how many sessions were revoked (audited)."""
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise NotFound(_l("No such user."))
    was_active = user.is_active
    user.is_active = False
    revoked = db.session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason="user_deactivated")
    )
    count = int(revoked.rowcount)  # type: ignore[attr-defined]
    audit.record(
        actor,
        "user.deactivated",
        "user",
        user.id,
        before={"active": was_active},
        after={"active": False, "sessions_revoked": count},
    )
    db.session.commit()
    return count


# --- organisations and API keys ------------------------------------------------------------


def create_organisation(name: str, kind: str, actor: Principal | None = None) -> Organisation:
    """Create an organisation; 409 when the name is taken."""
    if kind not in ORG_KINDS:
        raise InvalidInput(
            _l("Must be one of: %(choices)s.", choices=", ".join(ORG_KINDS)), field="kind"
        )
    organisation = Organisation(name=name.strip(), kind=kind)
    db.session.add(organisation)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_l("An organisation with this name already exists."), field="name") from None
    audit.record(
        actor, "organisation.created", "organisation", organisation.id, after={"kind": kind}
    )
    db.session.commit()
    return organisation


def get_organisation(organisation_id: str) -> Organisation:
    organisation = db.session.get(Organisation, organisation_id)
    if organisation is None:
        raise NotFound(_l("No such organisation."))
    return organisation


def list_organisations() -> list[Organisation]:
    return list(db.session.scalars(select(Organisation).order_by(Organisation.name)))


def issue_api_key(
    organisation_id: str, label: str | None = None, actor: Principal | None = None
) -> IssuedKey:
    """A new key for the organisation (older keys stay valid until revoked: rotation)."""
    organisation = get_organisation(organisation_id)
    prefix = secrets.token_hex(6)
    secret = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        organisation_id=organisation.id, prefix=prefix, key_hash=_sha256(secret), label=label
    )
    db.session.add(key)
    db.session.flush()
    audit.record(
        actor, "api_key.issued", "api_key", key.id, after={"prefix": prefix, "label": label}
    )
    db.session.commit()
    return IssuedKey(key=key, secret=secret)


def list_api_keys(organisation_id: str) -> list[ApiKey]:
    get_organisation(organisation_id)
    query = select(ApiKey).where(ApiKey.organisation_id == organisation_id)
    return list(db.session.scalars(query.order_by(ApiKey.created_at)))


def revoke_api_key(organisation_id: str, key_id: str, actor: Principal | None = None) -> ApiKey:
    """Revoke one key now; revoking twice is harmless."""
    key = db.session.get(ApiKey, key_id)
    if key is None or key.organisation_id != organisation_id:
        raise NotFound(_l("No such API key."))
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit.record(actor, "api_key.revoked", "api_key", key.id, before={"revoked": False})
        db.session.commit()
    return key


def principal_from_api_key(presented: str) -> Principal:
    """Find the key and its organisation by the key's prefix in one indexed query, compare
    hashes in constant time; 401 if unknown or revoked (a revocation counts at once)."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or not _API_KEY_PREFIX.fullmatch(parts[1]):
        raise Unauthorized(_l("API key is not valid."))
    row = db.session.execute(
        select(
            ApiKey.key_hash,
            ApiKey.revoked_at,
            Organisation.id,
            Organisation.name,
            Organisation.kind,
        )
        .join(Organisation, Organisation.id == ApiKey.organisation_id)
        .where(ApiKey.prefix == parts[1])
    ).first()
    if row is None or not hmac.compare_digest(row.key_hash, _sha256(presented)):
        raise Unauthorized(_l("API key is not valid."))
    if row.revoked_at is not None:
        raise Unauthorized(_l("API key has been revoked."))
    return Principal(kind="organisation", id=row.id, name=row.name, role=row.kind)


def update_me(principal: Principal, *, locale: str | None) -> dict[str, Any]:
    """Save the user's language (``None``: follow the app's Accept-Language again)."""
    user = get_user(principal.id)
    user.locale = locale
    db.session.commit()
    return describe(replace(principal, locale=locale))


def describe(principal: Principal) -> dict[str, Any]:
    """What ``GET /auth/me`` says about the caller."""
    if principal.is_user:  # authentication already loaded all of it: no second query
        return {
            "kind": "user",
            "id": principal.id,
            "name": principal.name,
            "role": principal.role,
            "email": principal.email,
            "department": principal.department,
            "locale": principal.locale,
        }
    return {
        "kind": "organisation",
        "id": principal.id,
        "name": principal.name,
        "role": principal.role,
        "organisation_kind": principal.role,
    }
