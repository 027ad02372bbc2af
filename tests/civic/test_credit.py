"""The city credit score: a ledger of events, a clamped materialised score, versioned bands."""

import threading

import pytest

from civic.service import credit
from core import db, outbox
from core.audit.models import AuditEntry
from tests.civic.conftest import send
from tests.conftest import count_rows

CREDIT = "/api/v1/civic/credit"
EVENTS = f"{CREDIT}/events"
BANDS = f"{CREDIT}/bands"


def post_event(account, user_id, delta, reason="volunteering", expected=201, **extra):
    body = {"user_id": user_id, "delta": delta, "reason": reason, "agency": "Seoul City", **extra}
    return account.api.post(EVENTS, body, expected=expected)


def test_a_new_citizen_stands_at_the_baseline_below_the_threshold(citizen):
    mine = citizen.api.get(CREDIT)
    assert mine == {
        "score": 500,
        "band": None,
        "limit": 0,
        "currency": "KRW",
        "eligible": False,
        "threshold": 550,
        "band_version": 1,
        "history": [],
    }


def test_events_move_the_score_and_the_band_and_the_citizen_sees_why(admin, citizen):
    post_event(admin, citizen.user.id, 60, "bill_paid_on_time", evidence="bill-17")
    mine = citizen.api.get(CREDIT)
    assert (mine["score"], mine["band"], mine["limit"], mine["eligible"]) == (
        560,
        "550-599",
        300_000,
        True,
    )
    post_event(admin, citizen.user.id, 140, "volunteering")
    mine = citizen.api.get(CREDIT)
    assert (mine["score"], mine["band"], mine["limit"]) == (700, "700-749", 2_000_000)
    assert [(e["delta"], e["reason"], e["score_after"]) for e in mine["history"]] == [
        (140, "volunteering", 700),
        (60, "bill_paid_on_time", 560),
    ]
    assert mine["history"][1]["evidence"] == "bill-17"
    assert mine["history"][1]["agency"] == "Seoul City"


def test_the_score_is_clamped_to_the_configured_range(admin, citizen):
    assert post_event(admin, citizen.user.id, 600)["score_after"] == 950
    assert citizen.api.get(CREDIT)["band"] == "750+"
    assert post_event(admin, citizen.user.id, -600)["score_after"] == 350
    assert post_event(admin, citizen.user.id, 10)["score_after"] == 360
    assert citizen.api.get(CREDIT)["score"] == 360


def test_an_official_may_post_and_the_posting_is_audited(app, official, citizen):
    event = post_event(official, citizen.user.id, -30, "bill_overdue", evidence="bill-9")
    with app.app_context():
        entry = db.session.query(AuditEntry).filter_by(object_id=event["id"]).one()
    assert entry.action == "credit.event_posted"
    assert entry.actor == f"user:{official.user.id}"
    assert entry.after is not None
    assert entry.after["delta"] == -30 and entry.after["score_after"] == 470


def test_a_replayed_posting_returns_the_first_answer_and_moves_the_score_once(admin, citizen):
    body = {"user_id": citizen.user.id, "delta": 25, "reason": "volunteering", "agency": "Gu"}
    headers = {"Idempotency-Key": "event-1"}
    first = admin.api.post(EVENTS, body, expected=201, headers=headers)
    again = admin.api.request("POST", EVENTS, 201, json=body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first
    assert citizen.api.get(CREDIT)["score"] == 525


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"delta": 0}, "delta"),
        ({"delta": 1.5}, "delta"),
        ({"delta": "10"}, "delta"),
        ({"delta": 601}, "delta"),
        ({"reason": "Not A Code"}, "reason"),
        ({"agency": ""}, "agency"),
        ({"user_id": "no-such-user"}, "user_id"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_event_names_its_field_and_writes_nothing(app, admin, citizen, change, field):
    body = {"user_id": citizen.user.id, "delta": 5, "reason": "volunteering", "agency": "Gu"}
    before = count_rows(app)
    error = admin.api.post(EVENTS, {**body, **change}, expected=422)
    assert field in error["errors"]["json"]
    assert count_rows(app) == before


def test_only_citizens_have_a_score_to_move(admin, official):
    error = post_event(admin, official.user.id, 5, expected=422)
    assert "user_id" in error["errors"]["json"]


def test_citizens_may_read_their_own_standing_but_not_post(citizen, official):
    post_event(citizen, citizen.user.id, 100, expected=403)
    official.api.get(CREDIT, expected=403)


def test_the_default_bands_are_version_one(admin):
    bands = admin.api.get(BANDS)
    assert (bands["version"], bands["threshold"], bands["currency"]) == (1, 550, "KRW")
    assert [(b["label"], b["limit"]) for b in bands["bands"]] == [
        ("550-599", 300_000),
        ("600-699", 1_000_000),
        ("700-749", 2_000_000),
        ("750+", 3_000_000),
    ]
    assert bands["history"] == []


NEW_BANDS = {
    "threshold": 600,
    "bands": [
        {"min": 600, "max": 799, "limit": 500_000},
        {"min": 800, "max": None, "limit": 5_000_000},
    ],
}


def test_new_bands_take_effect_and_the_earlier_version_is_kept(app, admin, citizen):
    post_event(admin, citizen.user.id, 80)  # 580
    before = citizen.api.get(CREDIT)
    assert (before["band"], before["limit"], before["band_version"]) == ("550-599", 300_000, 1)

    saved = send(admin, "PUT", BANDS, NEW_BANDS, 200)
    assert (saved["version"], saved["threshold"]) == (2, 600)
    assert saved["created_by"] == f"user:{admin.user.id}"
    assert [v["version"] for v in saved["history"]] == [1]
    assert saved["history"][0]["bands"][0]["limit"] == 300_000

    after = citizen.api.get(CREDIT)
    assert (after["eligible"], after["band"], after["limit"], after["band_version"]) == (
        False,
        None,
        0,
        2,
    )
    with app.app_context():
        assert db.session.query(AuditEntry).filter_by(action="credit.bands_saved").count() == 1

    send(admin, "PUT", BANDS, {**NEW_BANDS, "threshold": 600}, 200)
    assert [v["version"] for v in admin.api.get(BANDS)["history"]] == [2, 1]


def test_a_standing_records_the_bands_version_it_was_computed_under(app, admin, citizen):
    post_event(admin, citizen.user.id, 150)  # 650
    with app.app_context():
        decided = credit.standing(citizen.user.id)
    send(admin, "PUT", BANDS, NEW_BANDS, 200)
    with app.app_context():
        now = credit.standing(citizen.user.id)
        old = next(b for b in credit.bands_history() if b.version == decided.band_version)
    assert (decided.band_version, decided.limit, decided.band) == (1, 1_000_000, "600-699")
    assert (now.band_version, now.limit, now.band) == (2, 500_000, "600-799")
    assert old.band_of(650) == {"min": 600, "max": 699, "limit": 1_000_000}


@pytest.mark.parametrize(
    "bands",
    [
        {"threshold": 550, "bands": [{"min": 560, "max": None, "limit": 1}]},
        {"threshold": 550, "bands": [{"min": 550, "max": 600, "limit": 1}]},
        {
            "threshold": 550,
            "bands": [{"min": 550, "max": 599, "limit": 1}, {"min": 650, "max": None, "limit": 2}],
        },
        {
            "threshold": 550,
            "bands": [{"min": 550, "max": 700, "limit": 1}, {"min": 650, "max": None, "limit": 2}],
        },
        {"threshold": 100, "bands": [{"min": 100, "max": None, "limit": 1}]},
        {"threshold": 550, "bands": [{"min": 550, "max": None, "limit": -1}]},
        {"threshold": 550, "currency": "XYZ", "bands": [{"min": 550, "max": None, "limit": 1}]},
        {"threshold": 550, "bands": []},
    ],
)
def test_bands_with_gaps_overlaps_or_no_top_are_refused_and_write_nothing(app, admin, bands):
    before = count_rows(app)
    send(admin, "PUT", BANDS, bands, 422)
    assert count_rows(app) == before


def test_only_admins_see_or_change_the_bands(citizen, official):
    citizen.api.get(BANDS, expected=403)
    send(official, "PUT", BANDS, NEW_BANDS, 403)


def test_a_keyed_posting_applies_once(app, citizen):
    with app.app_context():
        first = credit.post_event(citizen.user.id, -50, "bill_overdue", "Hospital", key="bill-1")
        again = credit.post_event(citizen.user.id, -50, "bill_overdue", "Hospital", key="bill-1")
        assert first.id == again.id
        assert credit.standing(citizen.user.id).score == 450
        with pytest.raises(Exception, match="different event"):
            credit.post_event(citizen.user.id, -60, "bill_overdue", "Hospital", key="bill-1")


def test_a_requested_event_applies_after_the_callers_commit_once_per_key(app, citizen):
    with app.app_context():
        credit.request_event(citizen.user.id, -40, "bill_overdue", "Hospital", key="bill-2")
        db.session.rollback()  # the caller's transaction failed: nothing is asked
        outbox.deliver_ready()
        assert credit.standing(citizen.user.id).score == 500

        credit.request_event(
            citizen.user.id, -40, "bill_overdue", "Hospital", evidence="bill-2", key="bill-2"
        )
        assert credit.standing(citizen.user.id).score == 500  # not before the commit
        db.session.commit()
        assert outbox.deliver_ready() == 1
        assert credit.standing(citizen.user.id).score == 460

        # delivered again (a retry after a crash): applied once
        payload = {
            "user_id": citizen.user.id,
            "delta": -40,
            "reason": "bill_overdue",
            "agency": "Hospital",
            "evidence": "bill-2",
            "key": "bill-2",
        }
        credit.apply_requested_event(payload)
        credit.request_event(citizen.user.id, -40, "bill_overdue", "Hospital", key="bill-2")
        db.session.commit()
        outbox.deliver_ready()
        assert credit.standing(citizen.user.id).score == 460
        assert [e.posted_by for e in credit.history(citizen.user.id)] == ["system"]


def test_a_request_with_bad_arguments_is_refused_at_once(app, citizen):
    with app.app_context():
        with pytest.raises(Exception, match="other than 0"):
            credit.request_event(citizen.user.id, 0, "bill_overdue", "Hospital", key="k")
        with pytest.raises(Exception, match="between"):
            credit.request_event(citizen.user.id, 5, "bill_paid", "Hospital", key="")


def test_the_ledger_replayed_from_the_baseline_gives_the_score(app, admin, citizen):
    for delta in (300, 300, -100, -600, 40):
        post_event(admin, citizen.user.id, delta)
    with app.app_context():
        events = list(reversed(credit.history(citizen.user.id)))
        score = 500
        for event in events:
            score = min(950, max(350, score + event.delta))
            assert event.score_after == score
        assert credit.standing(citizen.user.id).score == score == 390


@pytest.mark.postgresql_only
def test_concurrent_events_for_one_citizen_all_count(app, citizen):
    errors: list[BaseException] = []

    def post(n: int) -> None:
        try:
            with app.app_context():
                credit.post_event(citizen.user.id, 1, "volunteering", "Gu", key=f"c-{n}")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with app.app_context():
        assert credit.standing(citizen.user.id).score == 512
        assert sorted(e.score_after for e in credit.history(citizen.user.id)) == list(
            range(501, 513)
        )
