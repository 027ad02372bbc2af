"""Accounts, login sessions, tokens, organisations and API keys: the rules."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

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


def principal_from_access_token(token: str) -> Principal:
    """Verify a Bearer token and load its live user and session; 401 otherwise."""
    try:
        claims = jwt.decode(
            token,
            current_app.config["JWT_SECRET_KEY"],
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub", "sid"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized(_l("Access token has expired.")) from None
    except jwt.PyJWTError:
        raise Unauthorized(_l("Access token is not valid.")) from None
    if claims.get("typ") != "access":
        raise Unauthorized(_l("Access token is not valid."))
    user = db.session.get(User, claims["sub"])
    auth_session = db.session.get(AuthSession, claims["sid"])
    if user is None or not user.is_active or auth_session is None or auth_session.revoked_at:
        raise Unauthorized(_l("This login session has ended; log in again."))
    return Principal(
        kind="user",
        id=user.id,
        name=user.name,
        role=user.role,
        department=user.department_code,
        session_id=auth_session.id,
        locale=user.locale,
    )


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
    """Find the key by its prefix, compare hashes in constant time; 401 if unknown or revoked."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        raise Unauthorized(_l("API key is not valid."))
    key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if key is None or not hmac.compare_digest(key.key_hash, _sha256(presented)):
        raise Unauthorized(_l("API key is not valid."))
    if key.revoked_at is not None:
        raise Unauthorized(_l("API key has been revoked."))
    organisation = key.organisation
    return Principal(
        kind="organisation", id=organisation.id, name=organisation.name, role=organisation.kind
    )


def update_me(principal: Principal, *, locale: str | None) -> dict[str, Any]:
    """Save the user's language (``None``: follow the app's Accept-Language again)."""
    user = get_user(principal.id)
    user.locale = locale
    db.session.commit()
    return describe(principal)


def describe(principal: Principal) -> dict[str, Any]:
    """What ``GET /auth/me`` says about the caller."""
    if principal.is_user:
        user = get_user(principal.id)
        return {
            "kind": "user",
            "id": user.id,
            "name": user.name,
            "role": user.role,
            "email": user.email,
            "department": user.department_code,
            "locale": user.locale,
        }
    return {
        "kind": "organisation",
        "id": principal.id,
        "name": principal.name,
        "role": principal.role,
        "organisation_kind": principal.role,
    }
