"""Organisations and their API keys: shown once, stored hashed, revocable, rotatable."""

from sqlalchemy import select

from core import db
from core.auth.models import ApiKey
from tests.conftest import count_rows

ORGS = "/api/v1/admin/organisations"
ME = "/api/v1/auth/me"


def test_an_admin_creates_a_hospital_whose_key_authenticates(admin, client):
    organisation = admin.api.post(ORGS, {"name": "Seoul General", "kind": "hospital"}, expected=201)
    issued = admin.api.post(f"{ORGS}/{organisation['id']}/api-keys", {"label": "HIS"}, expected=201)
    assert issued["api_key"].startswith(f"ck_{issued['key']['prefix']}_")

    me = client.as_api_key(issued["api_key"]).get(ME)
    assert me == {
        "kind": "organisation",
        "id": organisation["id"],
        "name": "Seoul General",
        "role": "hospital",
        "organisation_kind": "hospital",
    }


def test_an_api_key_is_stored_only_as_a_hash_and_never_listed(app, admin, make_organisation):
    organisation_id, secret = make_organisation("parking_operator")
    with app.app_context():
        stored = db.session.scalar(select(ApiKey.key_hash))
    assert stored is not None and secret not in stored and len(stored) == 64
    listed = admin.api.get(f"{ORGS}/{organisation_id}/api-keys")
    assert secret not in str(listed) and "api_key" not in listed[0]


def test_two_keys_work_at_once_and_a_revoked_one_is_401(admin, client, make_organisation):
    organisation_id, old_key = make_organisation("hospital")
    new = admin.api.post(f"{ORGS}/{organisation_id}/api-keys", {}, expected=201)
    client.as_api_key(old_key).get(ME)
    client.as_api_key(new["api_key"]).get(ME)

    old_id = next(
        k["id"]
        for k in admin.api.get(f"{ORGS}/{organisation_id}/api-keys")
        if k["id"] != new["key"]["id"]
    )
    revoked = admin.api.delete(f"{ORGS}/{organisation_id}/api-keys/{old_id}")
    assert revoked["revoked_at"] is not None
    error = client.as_api_key(old_key).get(ME, expected=401)
    assert error["message"] == "API key has been revoked."
    client.as_api_key(new["api_key"]).get(ME)


def test_a_forged_api_key_is_401(client, make_organisation):
    _, key = make_organisation("hospital")
    prefix = key.split("_")[1]
    client.as_api_key(f"ck_{prefix}_forged").get(ME, expected=401)
    client.as_api_key("garbage").get(ME, expected=401)


def test_an_organisation_cannot_call_admin_routes(client, make_organisation):
    _, key = make_organisation("hospital")
    client.as_api_key(key).get(ORGS, expected=403)


def test_an_unknown_kind_is_422_and_writes_nothing(app, admin):
    before = count_rows(app)
    error = admin.api.post(ORGS, {"name": "X", "kind": "bank"}, expected=422)
    assert "kind" in error["errors"]["json"]
    assert count_rows(app) == before


def test_admin_changes_are_audited(admin):
    organisation = admin.api.post(ORGS, {"name": "Audited", "kind": "open311_client"}, expected=201)
    trail = admin.api.get(f"/api/v1/admin/audit?object_id={organisation['id']}")
    assert [(e["action"], e["actor"], e["actor_role"]) for e in trail] == [
        ("organisation.created", f"user:{admin.user.id}", "admin")
    ]
    assert trail[0]["request_id"]
