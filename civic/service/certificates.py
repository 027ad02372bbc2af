"""E-certificates: the claims of an approved application signed as a compact JWS (EdDSA,
Ed25519, ``kid`` in the header), verifiable offline with the published JWK Set.

The signing key comes from ``CIVIC_SIGNING_KEY`` (PEM text or a PEM file's path); in development
a key is generated into ``instance/`` (production refuses to start without the setting). Every
key that signs is recorded in ``civic_signing_keys`` and published for good, so rotating the key
(setting a new one) leaves every earlier certificate verifiable.
"""

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import current_app
from sqlalchemy import select

from civic.models import Application, Certificate, SigningKey
from civic.service import applications, timeline
from core import db
from core.audit import service as audit
from core.auth.models import User
from core.auth.principal import Principal
from core.clock import utcnow
from core.errors import Conflict, NotFound
from core.i18n import _l

ALGORITHM = "EdDSA"
DEV_KEY_FILE = "civic-signing-key.pem"
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud, typed by hand


# --- keys ----------------------------------------------------------------------------------


def signing_key() -> Ed25519PrivateKey:
    """The key certificates are signed with now (loaded once per setting value)."""
    setting = current_app.config["CIVIC_SIGNING_KEY"]
    cached = current_app.extensions.get("civic_signing_key")
    if cached is None or cached[0] != setting:
        cached = (setting, _load(setting) if setting else _development_key())
        current_app.extensions["civic_signing_key"] = cached
    return cached[1]


def _load(setting: str) -> Ed25519PrivateKey:
    text = setting if setting.lstrip().startswith("-----BEGIN") else Path(setting).read_text()
    key = serialization.load_pem_private_key(text.replace("\\n", "\n").encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError("CIVIC_SIGNING_KEY is not an Ed25519 private key")
    return key


def _development_key() -> Ed25519PrivateKey:
    """A key kept in ``instance/`` for development (made on first use, readable by us only)."""
    path = Path(current_app.instance_path) / DEV_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:  # O_EXCL: two workers starting at once keep the first one's key
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(handle, "wb") as file:
                file.write(pem)
        except FileExistsError:
            pass
    return _load(str(path))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(public_key: Ed25519PublicKey) -> dict[str, str]:
    """The public key as a JWK (OKP, Ed25519) whose ``kid`` is its RFC 7638 thumbprint."""
    x = _b64(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    kid = _b64(hashlib.sha256(canonical.encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": ALGORITHM}


def jwks() -> dict[str, list[dict[str, str]]]:
    """Every key that has signed a certificate, and the current one (a JWK Set)."""
    keys = {row.kid: row.public_jwk for row in db.session.scalars(select(SigningKey))}
    current = public_jwk(signing_key().public_key())
    keys.setdefault(current["kid"], current)
    return {"keys": sorted(keys.values(), key=lambda jwk: jwk["kid"])}


def _record_key(jwk: dict[str, str]) -> None:
    """Publish the signing key for good. Two officials approving at once with a key not yet
    recorded both try to record it: the second insert is a no-op, not a unique violation."""
    if db.session.get(SigningKey, jwk["kid"]) is None:
        db.session.execute(
            db.insert(SigningKey)
            .values(kid=jwk["kid"], public_jwk=jwk, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["kid"])
        )


# --- issuing -------------------------------------------------------------------------------


def new_code() -> str:
    """A verification code: 16 characters (80 bits) in four groups, e.g. ``7KQM-2XTB-...``."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def normalise_code(code: str) -> str:
    raw = "".join(code.split()).replace("-", "").upper()
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def issue(application: Application) -> Certificate:
    """Sign the approved application's certificate (in the caller's transaction)."""
    key = signing_key()
    jwk = public_jwk(key.public_key())
    _record_key(jwk)
    code = new_code()
    claims = _claims(application, code)
    token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": jwk["kid"]})
    certificate = Certificate(
        code=code,
        application_id=application.id,
        kid=jwk["kid"],
        jws=token,
        claims=claims,
        issued_at=utcnow(),
    )
    db.session.add(certificate)
    return certificate


def _claims(application: Application, code: str) -> dict[str, Any]:
    """What the certificate states: the service, the applicant's name, the decision, dates."""
    applicant = db.session.get(User, application.applicant_id)
    version = applications.version_of(application)
    now = utcnow()
    return {
        "iss": current_app.config["CIVIC_CERTIFICATE_ISSUER"],
        "jti": code,
        "code": code,
        "iat": int(now.timestamp()),
        "application_id": application.id,
        "service": {
            "code": timeline.service_code(application),
            "version": version.version,
            "name": version.name,
        },
        "department": application.department_code,
        "applicant": {"name": applicant.name if applicant else None},
        "decision": "approved",
        "submitted_at": _iso(application.submitted_at),
        "decided_at": _iso(application.decided_at or now),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# --- reading, verifying, revoking ----------------------------------------------------------


def of_application(principal: Principal, application_id: str) -> Certificate:
    """The applicant's certificate for an approved application; 404 otherwise."""
    application = applications.load_for(principal, application_id)
    certificate = db.session.scalar(
        select(Certificate).where(Certificate.application_id == application.id)
    )
    if certificate is None:
        raise NotFound(_l("This application has no certificate."))
    return certificate


def _find(code: str) -> Certificate:
    certificate = db.session.scalar(
        select(Certificate).where(Certificate.code == normalise_code(code))
    )
    if certificate is None:
        raise NotFound(_l("No such certificate."))
    return certificate


def verify(code: str) -> dict[str, Any]:
    """Whether the certificate is genuine (its signature verifies with our published key) and
    not revoked; shows only what the signed certificate itself states."""
    certificate = _find(code)
    claims = _verified_claims(certificate.jws)
    return {
        "code": certificate.code,
        "genuine": claims is not None,
        "revoked": certificate.revoked_at is not None,
        "revoked_at": certificate.revoked_at,
        "claims": claims,
    }


def _verified_claims(token: str) -> dict[str, Any] | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        jwk = next((k for k in jwks()["keys"] if k["kid"] == kid), None)
        if jwk is None:
            return None
        key = jwt.PyJWK(jwk).key
        return dict(jwt.decode(token, key, algorithms=[ALGORITHM]))
    except jwt.PyJWTError:
        return None


def revoke(code: str, reason: str, actor: Principal) -> dict[str, Any]:
    """Revoke a certificate (audited); it stays genuine but is no longer valid."""
    certificate = _find(code)
    if certificate.revoked_at is not None:
        raise Conflict(_l("The certificate is already revoked."))
    certificate.revoked_at, certificate.revoked_reason = utcnow(), reason
    audit.record(
        actor,
        "certificate.revoked",
        "certificate",
        certificate.code,
        before={"revoked": False},
        after={"revoked": True, "reason": reason},
    )
    db.session.commit()
    return verify(certificate.code)
