"""Joining pay-later: the terms, the requirements, the limit that follows the score."""

from tests.health.conftest import (
    TERMS,
    H,
    bill,
    enrol,
    item,
    post_charges,
    save_card,
    visit,
)


def test_the_terms_are_served_with_their_version(client):
    terms = client.get(f"{H}/credit-line/terms")
    assert terms["version"] == TERMS
    assert "48" not in terms["text"] and "face" in terms["text"]


def test_a_citizen_with_a_score_of_600_joins_with_a_card_a_face_and_the_terms(citizen, set_score):
    set_score(citizen, 600)
    save_card(citizen)
    enrol(citizen)
    line = citizen.api.post(f"{H}/credit-line", {"terms_version": TERMS}, expected=201)
    assert line["status"] == "active"
    assert (line["limit"], line["used"], line["available"]) == (1_000_000, 0, 1_000_000)
    assert line["currency"] == "KRW" and line["face_enrolled"] is True
    assert citizen.api.get(f"{H}/credit-line") == line


def test_a_refusal_to_join_names_every_missing_requirement(citizen):
    refused = citizen.api.post(f"{H}/credit-line", {"terms_version": "1999-01"}, expected=422)
    assert refused["error"] == "requirements_not_met"
    assert refused["missing"] == ["card", "face", "score", "terms_version"]
    assert "550" in refused["errors"]["json"]["score"][0]
    citizen.api.get(f"{H}/credit-line", expected=404)


def test_each_requirement_met_leaves_only_the_others(citizen, set_score):
    set_score(citizen, 560)
    save_card(citizen)
    refused = citizen.api.post(f"{H}/credit-line", {"terms_version": TERMS}, expected=422)
    assert refused["missing"] == ["face"]


def test_joining_twice_is_a_conflict(member):
    account = member()
    account.api.post(f"{H}/credit-line", {"terms_version": TERMS}, expected=409)


def test_the_limit_follows_the_score_and_what_is_owed_stays_owed(member, hospital, set_score):
    account = member(score=600)
    opened = visit(hospital, account)
    post_charges(hospital, opened["id"], item(200_000))
    line = account.api.get(f"{H}/credit-line")
    assert (line["limit"], line["used"], line["available"]) == (1_000_000, 200_000, 800_000)
    set_score(account, 560)  # band 550-599: ₩300,000
    line = account.api.get(f"{H}/credit-line")
    assert (line["limit"], line["used"], line["available"]) == (300_000, 200_000, 100_000)
    set_score(account, 500)  # below the threshold: no limit, the debt stays
    line = account.api.get(f"{H}/credit-line")
    assert (line["limit"], line["used"], line["available"]) == (0, 200_000, 0)
    assert line["status"] == "active"


def test_closing_is_refused_while_something_is_owed(member, hospital):
    account = member()
    issued = bill(hospital, account, 50_000)
    refused = account.api.delete(f"{H}/credit-line", expected=409)
    assert "Settle" in refused["message"]
    assert issued["status"] == "open"


def test_closing_with_nothing_owed_closes_and_rejoining_opens_again(member):
    account = member()
    closed = account.api.delete(f"{H}/credit-line")
    assert closed["status"] == "closed" and closed["closed_at"]
    account.api.delete(f"{H}/credit-line", expected=404)
    again = account.api.post(f"{H}/credit-line", {"terms_version": TERMS}, expected=201)
    assert again["status"] == "active"


def test_only_citizens_have_credit_lines(hospital, commission):
    hospital.api.get(f"{H}/credit-line", expected=403)
    commission.api.get(f"{H}/credit-line", expected=403)
