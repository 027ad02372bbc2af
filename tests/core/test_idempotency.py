"""The Idempotency-Key decorator, on a small endpoint that writes a row per call."""

import threading
from datetime import timedelta

import pytest
import time_machine
from flask import jsonify
from sqlalchemy import func, select

from core import db
from core.auth.access import ANY_USER, current_principal, requires
from core.clock import utcnow
from core.idempotency import IdempotencyRecord, idempotent, sweep_expired_keys
from core.inbox import service as inbox
from core.inbox.models import Notification
from tests.conftest import ApiClient, build_app

release = threading.Event()
started = threading.Event()


@pytest.fixture
def api(app, tmp_path, citizen):
    """A second app on the same database with endpoints that use the decorator."""
    test_app = build_app(app.config["DATABASE_URL"], tmp_path, PROPAGATE_EXCEPTIONS=False)

    @test_app.post("/test/notes")
    @requires(ANY_USER)
    @idempotent
    def create_note():
        note = inbox.notify(current_principal().id, "note", "t", "b")
        db.session.commit()
        return jsonify(id=note.id), 201

    @test_app.post("/test/slow")
    @requires(ANY_USER)
    @idempotent
    def slow():
        started.set()
        release.wait(10)
        return jsonify(done=True), 201

    @test_app.post("/test/broken")
    @requires(ANY_USER)
    @idempotent
    def broken():
        inbox.notify(current_principal().id, "note", "t", "b")
        raise RuntimeError("boom")

    release.clear()
    started.clear()
    yield ApiClient(test_app.test_client()).as_token(citizen.access_token)
    release.set()
    test_app.extensions["db_engine"].dispose()


def _notes(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Notification))


def test_a_replay_returns_the_first_response_and_writes_once(app, api):
    first = api.request(
        "POST", "/test/notes", 201, json={"x": 1}, headers={"Idempotency-Key": "k1"}
    )
    again = api.request(
        "POST", "/test/notes", 201, json={"x": 1}, headers={"Idempotency-Key": "k1"}
    )
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _notes(app) == 1


def test_without_a_key_every_call_writes(app, api):
    api.request("POST", "/test/notes", 201, json={})
    api.request("POST", "/test/notes", 201, json={})
    assert _notes(app) == 2


def test_the_same_key_with_another_body_is_422(app, api):
    api.request("POST", "/test/notes", 201, json={"x": 1}, headers={"Idempotency-Key": "k2"})
    error = api.request(
        "POST", "/test/notes", 422, json={"x": 2}, headers={"Idempotency-Key": "k2"}
    )
    assert "Idempotency-Key" in error.get_json()["errors"]["headers"]
    assert _notes(app) == 1


def test_keys_belong_to_their_caller(app, api, make_account, tmp_path):
    api.request("POST", "/test/notes", 201, json={}, headers={"Idempotency-Key": "shared"})
    other = make_account("citizen")
    other_api = ApiClient(api.client).as_token(other.access_token)
    replay = other_api.request(
        "POST", "/test/notes", 201, json={}, headers={"Idempotency-Key": "shared"}
    )
    assert "Idempotent-Replayed" not in replay.headers
    assert _notes(app) == 2


def test_a_duplicate_while_the_first_is_running_is_409(api):
    results = {}

    def first():
        results["first"] = api.request(
            "POST", "/test/slow", 201, json={}, headers={"Idempotency-Key": "k3"}
        )

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert started.wait(10), "the first request never reached the view"
        duplicate = api.request(
            "POST", "/test/slow", 409, json={}, headers={"Idempotency-Key": "k3"}
        )
        assert "still being processed" in duplicate.get_json()["message"]
    finally:
        release.set()
        thread.join(10)
    assert results["first"].status_code == 201
    replay = api.request("POST", "/test/slow", 201, json={}, headers={"Idempotency-Key": "k3"})
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_a_failed_request_releases_its_key_and_writes_nothing(app, api):
    api.request("POST", "/test/broken", 500, json={}, headers={"Idempotency-Key": "k4"})
    assert _notes(app) == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0


def test_an_overlong_key_is_422(api):
    api.request("POST", "/test/notes", 422, json={}, headers={"Idempotency-Key": "k" * 256})


def test_keys_expire_after_24_hours(app, api):
    api.request("POST", "/test/notes", 201, json={}, headers={"Idempotency-Key": "old"})
    with app.app_context():
        with time_machine.travel(utcnow() + timedelta(hours=23)):
            assert sweep_expired_keys() == 0
        with time_machine.travel(utcnow() + timedelta(hours=25)):
            assert sweep_expired_keys() == 1


def _abandon_a_claim(app, citizen, body, *, path="/test/notes", key="lost"):
    """A claim whose worker died six minutes ago, made by a request with ``body``."""
    from core import idempotency

    with app.test_request_context(path, method="POST", json=body):
        fingerprint = idempotency._fingerprint()
    with app.app_context():
        db.session.add(
            IdempotencyRecord(
                scope=f"user:{citizen.user.id}",
                key=key,
                request_hash=fingerprint,
                created_at=utcnow() - timedelta(minutes=6),
            )
        )
        db.session.commit()


def test_an_abandoned_claim_is_taken_over_by_the_same_request(app, api, citizen):
    _abandon_a_claim(app, citizen, {"x": 1})
    first = api.request(
        "POST", "/test/notes", 201, json={"x": 1}, headers={"Idempotency-Key": "lost"}
    )
    replay = api.request(
        "POST", "/test/notes", 201, json={"x": 1}, headers={"Idempotency-Key": "lost"}
    )
    assert replay.get_json() == first.get_json() and _notes(app) == 1


def test_an_abandoned_claim_still_refuses_a_different_request(app, api, citizen):
    _abandon_a_claim(app, citizen, {"x": 1})
    error = api.request(
        "POST", "/test/notes", 422, json={"x": 2}, headers={"Idempotency-Key": "lost"}
    )
    assert "different request" in error.get_json()["message"]
    assert _notes(app) == 0
    # The original request may still take it over and run once.
    api.request("POST", "/test/notes", 201, json={"x": 1}, headers={"Idempotency-Key": "lost"})
    api.request("POST", "/test/notes", 201, json={"x": 1}, headers={"Idempotency-Key": "lost"})
    assert _notes(app) == 1


def test_two_retries_racing_for_an_abandoned_claim_run_it_once(app, api, citizen, monkeypatch):
    from core import idempotency

    _abandon_a_claim(app, citizen, {"x": 1})
    both_read_it = threading.Barrier(2, timeout=10)
    first_call = threading.local()

    def clock_after_both_read():
        # The decorator first asks the time once it has read the claim: hold each request
        # there until the other has read it too, so both try to take over the same claim.
        if not getattr(first_call, "done", False):
            first_call.done = True
            both_read_it.wait()
        return utcnow()

    monkeypatch.setattr(idempotency, "utcnow", clock_after_both_read)
    statuses = []

    def retry():
        response = api.client.post(
            "/test/notes",
            json={"x": 1},
            headers={**api.headers, "Idempotency-Key": "lost"},
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=retry) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(statuses) == [201, 409]
    assert _notes(app) == 1
