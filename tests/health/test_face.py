"""Face enrolment and verification with the real library and the fixture photos."""

import base64
import io
from datetime import timedelta

import numpy as np
import pytest
import time_machine
from sqlalchemy import func, select

from core import db
from core.clock import utcnow
from core.inbox.models import Notification
from health import faces
from health.models import FaceProbe, FaceTemplate
from health.service import face
from tests.conftest import PRODUCTION_SETTINGS, count_rows
from tests.health.conftest import (
    H,
    bill,
    blank_photo,
    enrol,
    photo,
    settle,
    two_faces_photo,
    upload,
    visit,
)


def test_enrolment_needs_explicit_consent(app, citizen):
    before = count_rows(app)
    for consent in ("false", None):
        fields = {"consent": consent} if consent else {}
        citizen.api.request("PUT", f"{H}/face", 422, data=upload(photo("obama"), **fields))
    assert count_rows(app) == before
    assert citizen.api.get(f"{H}/face") == {"enrolled": False, "attempts_left": 0}


def test_enrolment_keeps_only_the_encoding_encrypted_and_records_the_consent(app, citizen):
    shown = enrol(citizen)
    assert shown["enrolled"] is True and shown["consented_at"] and shown["attempts_left"] == 5
    with app.app_context():
        template = db.session.get(FaceTemplate, citizen.user.id)
        assert template is not None
        sealed = template.encoding
        assert len(sealed) == 12 + 128 * 8 + 16  # nonce, 128 float64, GCM tag: no image
        expected = faces.encode(photo("obama")).encoding
        opened = face.cipher().open(sealed, f"health-face-template:{citizen.user.id}")
        assert np.allclose(opened, expected)
        assert expected.astype("<f8").tobytes() not in sealed
        with pytest.raises(faces.FaceKeyError):  # bound to its owner: not another's template
            face.cipher().open(sealed, "health-face-template:someone-else")
        notices = db.session.scalars(
            select(Notification.kind).where(Notification.user_id == citizen.user.id)
        ).all()
    assert notices == ["health_face_enrolled"]


def test_the_same_person_matches_another_does_not_and_a_resent_photo_is_a_replay(member, hospital):
    account = member(face="obama")
    bill(hospital, account, 10_000)
    refused = settle(account, "biden", expected=403)
    assert (refused["error"], refused["attempts_left"]) == ("face_mismatch", 4)
    replay = settle(account, "obama", expected=422)  # the enrolment photo, sent again
    assert (replay["error"], replay["attempts_left"]) == ("face_replayed", 3)
    assert settle(account, "obama2")["status"] == "succeeded"
    bill(hospital, account, 20_000)
    assert settle(account, "obama2", expected=422)["error"] == "face_replayed"  # a probe again
    assert settle(account, "obama3")["status"] == "succeeded"
    assert account.api.get(f"{H}/face")["attempts_left"] == 5  # a success resets the count


def test_a_re_saved_copy_of_an_earlier_photo_is_a_replay(app, member, hospital):
    from PIL import Image

    account = member(face="obama")
    bill(hospital, account, 10_000)
    original = Image.open(io.BytesIO(photo("obama2")))
    resaved = io.BytesIO()
    original.resize((original.width * 3 // 4, original.height * 3 // 4)).save(
        resaved, "JPEG", quality=70
    )
    settle(account, "obama2")
    bill(hospital, account, 10_000)
    assert settle(account, resaved.getvalue(), expected=422)["error"] == "face_replayed"


def test_no_face_or_two_faces_is_422_saying_which_and_costs_no_attempt(member, hospital):
    account = member()
    bill(hospital, account, 10_000)
    none = settle(account, blank_photo(), expected=422)
    assert none["error"] == "no_face" and "No face" in none["message"]
    several = settle(account, two_faces_photo(), expected=422)
    assert several["error"] == "several_faces" and "Several faces" in several["message"]
    account.api.request("PUT", f"{H}/face", 422, data=upload(two_faces_photo(), consent="true"))
    assert account.api.get(f"{H}/face")["attempts_left"] == 5


def test_a_file_that_is_not_an_image_is_422_and_a_large_one_is_413(app, member, hospital):
    account = member()
    bill(hospital, account, 10_000)
    not_image = settle(account, b"%PDF-1.4 not a photo", expected=422)
    assert not_image["error"] == "not_an_image"
    limit = app.config["FACE_MAX_UPLOAD_BYTES"]
    too_large = settle(account, b"\xff\xd8\xff" + b"0" * limit, expected=413)
    assert too_large["error"] == "image_too_large"
    way_too_large = b"\xff\xd8\xff" + b"0" * (limit + 200_000)  # refused while being read
    account.api.request("POST", f"{H}/settlements", 413, data=upload(way_too_large))


@pytest.fixture
def ten_minute_lock(app):
    app.config["FACE_LOCK_MINUTES"] = 10  # the lock is a setting (and access tokens last 15)
    yield
    app.config["FACE_LOCK_MINUTES"] = 30


@pytest.mark.usefixtures("ten_minute_lock")
def test_five_failed_attempts_lock_face_payment_until_the_lock_runs_out(app, member, hospital):
    account = member()
    bill(hospital, account, 10_000)
    settle(account, "biden", expected=403)
    for left in (3, 2, 1):
        assert settle(account, "biden", expected=422)["attempts_left"] == left  # replays count
    last = settle(account, "obama", expected=422)
    assert last["attempts_left"] == 0
    locked = account.api.request("POST", f"{H}/settlements", 423, data=upload(photo("obama2")))
    body = locked.get_json()
    assert body["error"] == "face_locked" and int(locked.headers["Retry-After"]) > 0
    unlocks_at = utcnow().fromisoformat(body["unlocks_at"])
    minutes = app.config["FACE_LOCK_MINUTES"]
    assert timedelta(minutes=minutes - 1) < unlocks_at - utcnow() <= timedelta(minutes=minutes)
    assert account.api.get(f"{H}/face")["locked_until"] == body["unlocks_at"]
    account.api.request("PUT", f"{H}/face", 423, data=upload(photo("biden"), consent="true"))
    with time_machine.travel(unlocks_at + timedelta(seconds=1)):
        assert account.api.get(f"{H}/face")["attempts_left"] == 5
        assert settle(account, "obama2")["status"] == "succeeded"


def test_deleting_the_face_erases_the_template_and_probes_and_closes_face_payment(
    app, member, hospital
):
    account = member()
    bill(hospital, account, 10_000)
    settle(account, "biden", expected=403)
    account.api.request("DELETE", f"{H}/face", 204)
    assert account.api.get(f"{H}/face")["enrolled"] is False
    with app.app_context():
        kept = db.session.scalar(select(func.count()).where(FaceProbe.user_id == account.user.id))
        assert kept == 0 and db.session.get(FaceTemplate, account.user.id) is None
    refused = settle(account, "obama2", expected=409)
    assert "Enrol" in refused["message"]
    assert visit(hospital, account)["reason"] == "face_not_enrolled"
    assert account.api.get(f"{H}/credit-line")["face_enrolled"] is False
    enrol(account, "obama")
    assert settle(account, "obama3")["status"] == "succeeded"


def test_a_full_size_photo_is_scaled_down_before_detection(app):
    with app.app_context():
        found = faces.encode(photo("obama3"), app.config["FACE_DETECTION_MAX_SIDE"])
    assert max(found.analysed_size) == 640  # 1434x2333 analysed at 393x640


def test_the_cipher_refuses_another_key():
    sealed = faces.FaceCipher(b"k" * 32).seal(np.zeros(128), "ctx")
    with pytest.raises(faces.FaceKeyError):
        faces.FaceCipher(b"j" * 32).open(sealed, "ctx")


def test_a_development_key_is_made_once_and_production_refuses_to_start_without_face_key(
    tmp_path, monkeypatch
):
    from core import config

    key = faces.development_key(tmp_path / "face.key")
    assert key == faces.development_key(tmp_path / "face.key") and len(key) == 32
    assert oct((tmp_path / "face.key").stat().st_mode)[-3:] == "600"
    settings = config.load()
    settings.update(PRODUCTION_SETTINGS, APP_ENV="production", FACE_KEY="")
    with pytest.raises(RuntimeError, match="FACE_KEY"):
        config.validate(settings)
    settings["FACE_KEY"] = "too-short"
    with pytest.raises(RuntimeError, match="FACE_KEY"):
        config.validate(settings)
    settings["FACE_KEY"] = base64.b64encode(b"k" * 32).decode()
    config.validate(settings)
    settings["FACE_MATCH_THRESHOLD"] = 0.6  # not stricter than the library's default
    with pytest.raises(RuntimeError, match="FACE_MATCH_THRESHOLD"):
        config.validate(settings)
