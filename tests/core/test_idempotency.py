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
