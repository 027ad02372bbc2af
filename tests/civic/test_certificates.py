"""E-certificates: a compact JWS (EdDSA, Ed25519, kid) that verifies with the published JWK
Set, independently of us; public verification; revocation; key rotation; the development key."""

import os
import stat

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from civic.models import Certificate
from civic.service import certificates
from core import config as settings
from core import db
from core.audit.models import AuditEntry
from tests.civic.conftest import APPLICATIONS, passport_service, submit
from tests.conftest import PRODUCTION_SETTINGS

KEYS = "/api/v1/civic/certificates/keys"
VERIFY = "/api/v1/civic/certificates"


@pytest.fixture
def approve(citizen, official, publish):
    publish(passport_service(fee=None))

    def run() -> str:
        created = submit(citizen).get_json()
        url = f"{APPLICATIONS}/{created['id']}"
        official.api.post(f"{url}/claim", expected=200)
        official.api.post(f"{url}/approve", {}, expected=200)
        return created["id"]

    return run


def verify_independently(client, jws):
    """What a bank would do: fetch the JWK Set, pick the key by kid, check with PyJWT."""
    key_set = jwt.PyJWKSet.from_dict(client.get(KEYS))
    kid = jwt.get_unverified_header(jws)["kid"]
    key = next(k for k in key_set.keys if k.key_id == kid)
    return jwt.decode(jws, key.key, algorithms=["EdDSA"])


def test_the_applicant_gets_a_certificate_that_verifies_with_the_published_key(
    client, citizen, official, approve
):
    application_id = approve()
    certificate = citizen.api.get(f"{APPLICATIONS}/{application_id}/certificate")
    header = jwt.get_unverified_header(certificate["jws"])
    assert header["alg"] == "EdDSA" and header["kid"]
    claims = verify_independently(client, certificate["jws"])
    assert claims == certificate["claims"]
    assert claims["code"] == certificate["code"]
    assert claims["decision"] == "approved"
    assert claims["applicant"] == {"name": "Test citizen"}
    assert claims["service"]["code"] == "PASSPORT-REISSUE"
    assert claims["service"]["name"]["en"] == "Passport reissue"
    assert claims["iss"] == "demo.city"
    keys = client.get(KEYS)["keys"]
    assert [(k["kty"], k["crv"], k["alg"]) for k in keys] == [("OKP", "Ed25519", "EdDSA")]
    assert "d" not in keys[0]  # never the private part
    official.api.get(f"{APPLICATIONS}/{application_id}/certificate", expected=403)


def test_anyone_can_check_a_certificate_by_its_code(client, citizen, approve):
    application_id = approve()
    code = citizen.api.get(f"{APPLICATIONS}/{application_id}/certificate")["code"]
    checked = client.get(f"{VERIFY}/{code}")
    assert (checked["genuine"], checked["revoked"]) == (True, False)
    assert checked["claims"]["applicant"]["name"] == "Test citizen"
    assert set(checked) == {"code", "genuine", "revoked", "revoked_at", "claims"}
    typed = code.replace("-", "").lower()
    assert client.get(f"{VERIFY}/{typed}")["code"] == code
    client.get(f"{VERIFY}/AAAA-BBBB-CCCC-DDDD", expected=404)


def test_a_tampered_certificate_is_not_genuine(app, client, citizen, approve):
    application_id = approve()
    code = citizen.api.get(f"{APPLICATIONS}/{application_id}/certificate")["code"]
    with app.app_context():
        row = db.session.query(Certificate).filter_by(code=code).one()
        header, payload, signature = row.jws.split(".")
        forged = jwt.utils.base64url_encode(
            jwt.utils.base64url_decode(payload).replace(b"Test citizen", b"Evil citizen")
        ).decode()
        row.jws = f"{header}.{forged}.{signature}"
        db.session.commit()
    checked = client.get(f"{VERIFY}/{code}")
    assert (checked["genuine"], checked["claims"]) == (False, None)


def test_an_admin_revokes_a_certificate(app, client, admin, citizen, approve):
    application_id = approve()
    code = citizen.api.get(f"{APPLICATIONS}/{application_id}/certificate")["code"]
    citizen.api.post(f"{VERIFY}/{code}/revoke", {"reason": "mine"}, expected=403)
    revoked = admin.api.post(f"{VERIFY}/{code}/revoke", {"reason": "Issued in error"}, expected=200)
    assert (revoked["genuine"], revoked["revoked"]) == (True, True)
    assert client.get(f"{VERIFY}/{code}")["revoked_at"] is not None
    admin.api.post(f"{VERIFY}/{code}/revoke", {"reason": "again"}, expected=409)
    with app.app_context():
        assert db.session.query(AuditEntry).filter_by(action="certificate.revoked").count() == 1


def test_no_certificate_before_approval(citizen, publish):
    publish(passport_service(fee=None))
    created = submit(citizen).get_json()
    citizen.api.get(f"{APPLICATIONS}/{created['id']}/certificate", expected=404)


def _pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_rotating_the_key_keeps_earlier_certificates_verifiable(app, client, citizen, approve):
    first = citizen.api.get(f"{APPLICATIONS}/{approve()}/certificate")
    app.config["CIVIC_SIGNING_KEY"] = _pem()  # the operator rotates the key
    second = citizen.api.get(f"{APPLICATIONS}/{approve()}/certificate")
    kids = {jwt.get_unverified_header(c["jws"])["kid"] for c in (first, second)}
    assert len(kids) == 2
    assert {k["kid"] for k in client.get(KEYS)["keys"]} == kids
    for certificate in (first, second):
        assert verify_independently(client, certificate["jws"]) == certificate["claims"]
        assert client.get(f"{VERIFY}/{certificate['code']}")["genuine"] is True


def test_two_approvals_recording_the_same_new_key_at_once_both_succeed(
    client, citizen, approve, monkeypatch
):
    """Two officials approve at once while the signing key is not yet recorded: both look,
    find no row, and insert it. The second insert must be a no-op, not a 500 (a ten-minute load
    on a fresh database met exactly this). Simulated: the look finds nothing although the
    other transaction has committed the row."""
    first = approve()
    looked_up = db.session.get

    def nothing_recorded_yet(entity, *args, **kwargs):
        return None if entity is certificates.SigningKey else looked_up(entity, *args, **kwargs)

    monkeypatch.setattr(db.session, "get", nothing_recorded_yet)
    second = approve()
    monkeypatch.undo()
    codes = [citizen.api.get(f"{APPLICATIONS}/{a}/certificate")["code"] for a in (first, second)]
    assert all(client.get(f"{VERIFY}/{code}")["genuine"] is True for code in codes)
    assert len(client.get(KEYS)["keys"]) == 1


def test_the_key_may_be_given_as_a_file(app, tmp_path):
    path = tmp_path / "signing.pem"
    path.write_text(_pem())
    app.config["CIVIC_SIGNING_KEY"] = str(path)
    with app.app_context():
        assert certificates.signing_key() is not None


def test_without_a_key_development_generates_one_into_instance(app, tmp_path, monkeypatch):
    monkeypatch.setattr(app, "instance_path", str(tmp_path))
    app.config["CIVIC_SIGNING_KEY"] = ""
    with app.app_context():
        first = certificates.public_jwk(certificates.signing_key().public_key())
        app.extensions.pop("civic_signing_key")
        again = certificates.public_jwk(certificates.signing_key().public_key())
    key_file = tmp_path / certificates.DEV_KEY_FILE
    assert first == again
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_production_refuses_to_start_without_a_signing_key():
    config = settings.load()
    config.update(PRODUCTION_SETTINGS, APP_ENV="production", CIVIC_SIGNING_KEY="")
    with pytest.raises(RuntimeError, match="CIVIC_SIGNING_KEY"):
        settings.validate(config)
    config["CIVIC_SIGNING_KEY"] = "/run/secrets/civic.pem"
    settings.validate(config)


def test_a_key_that_is_not_ed25519_is_refused(app):
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    app.config["CIVIC_SIGNING_KEY"] = other.decode()
    with app.app_context(), pytest.raises(RuntimeError, match="Ed25519"):
        certificates.signing_key()
