"""The health commission's dashboard API: a day's figures in the city's timezone, per
hospital, the last 30 days, and no personal data."""

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine

from core.auth.principal import Principal
from health.service import settlements, visits
from tests.health.conftest import H, item, post_charges, visit

SEOUL = ZoneInfo("Asia/Seoul")
DAY = date(2026, 11, 20)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in Seoul in November 2026."""
    return datetime(2026, 11, day, hour, minute, tzinfo=SEOUL)


def _as(hospital) -> Principal:
    return Principal(kind="organisation", id=hospital.id, name="h", role="hospital")


def _bill_issued_at(app, hospital, account, amount, when):
    opened = visit(hospital, account, visited_at=when.isoformat())
    post_charges(hospital, opened["id"], item(amount))
    with app.app_context(), time_machine.travel(when):
        return visits.close_visit(_as(hospital), opened["id"])


def _settle_at(app, account, issued, when):
    with app.app_context(), time_machine.travel(when):
        settlements.drive(settlements.claim(account.user.id, [issued["id"]], kind="face"))


def _figures(commission, day=DAY):
    return commission.api.get(f"{H}/dashboard?date={day.isoformat()}")


def test_the_days_figures_are_counted_in_the_city_timezone_per_hospital_without_persons(
    app, member, make_account, make_hospital, commission
):
    north, south = make_hospital("North Clinic"), make_hospital("South Hospital")
    a, b, c = member(), member(), member()
    outsider = make_account("citizen")  # never joined: pays at the desk
    # Bills issued two days before, due on DAY: one paid in time, one late, one never.
    paid = _bill_issued_at(app, north, a, 10_000, at(18, 10))
    _bill_issued_at(app, north, b, 20_000, at(18, 10))  # never paid
    late = _bill_issued_at(app, south, c, 5_000, at(18, 11))
    _settle_at(app, a, paid, at(19, 9))
    _settle_at(app, c, late, at(20, 12))
    # Visits on DAY, in Seoul time: 08:30 there is still the 19th in UTC.
    for hospital, account, when in (
        (north, c, at(20, 8, 30)),
        (north, a, at(20, 9, 30)),
        (north, outsider, at(20, 9, 30)),
        (south, b, at(20, 9, 30)),
        (south, a, at(20, 23, 30)),
        (south, c, at(21, 0, 30)),  # the next day in Seoul, still the 20th in UTC
    ):
        visit(hospital, account, visited_at=when.isoformat())

    figures = _figures(commission)
    assert figures["date"] == "2026-11-20" and figures["timezone"] == "Asia/Seoul"
    assert (figures["visits"], figures["pay_later_visits"], figures["pay_later_patients"]) == (
        5,
        4,
        3,
    )
    assert figures["usage_ratio"] == 0.8
    assert (figures["bills_due"], figures["settled_in_window"]) == (3, 1)
    assert figures["settled_in_window_ratio"] == 0.3333
    assert (figures["overdue_count"], figures["overdue_amount"]) == (1, 20_000)
    assert figures["currency"] == "KRW"

    by_name = {h["name"]: h for h in figures["hospitals"]}
    assert list(by_name) == ["North Clinic", "South Hospital"]
    assert {k: by_name["North Clinic"][k] for k in ("visits", "pay_later_visits")} == {
        "visits": 3,
        "pay_later_visits": 2,
    }
    assert (by_name["North Clinic"]["bills_due"], by_name["North Clinic"]["overdue_amount"]) == (
        2,
        20_000,
    )
    assert (by_name["South Hospital"]["visits"], by_name["South Hospital"]["bills_due"]) == (2, 1)
    assert by_name["South Hospital"]["settled_in_window"] == 0

    series = figures["series"]
    assert len(series) == 30 and series[-1]["date"] == "2026-11-20"
    assert series[0]["date"] == (DAY - timedelta(days=29)).isoformat()
    issue_day = next(d for d in series if d["date"] == "2026-11-18")
    assert (issue_day["visits"], issue_day["billed_amount"], issue_day["overdue_count"]) == (
        3,
        35_000,
        0,
    )
    assert series[-1] == {k: figures[k] for k in series[-1]}

    text = json.dumps(figures)
    for person in (a, b, c, outsider):
        assert person.user.id not in text and person.user.email not in text
    assert "Test citizen" not in text

    next_day = _figures(commission, DAY + timedelta(days=1))
    assert (next_day["visits"], next_day["overdue_count"]) == (1, 1)


def test_without_a_date_it_is_today_in_the_city(commission):
    figures = commission.api.get(f"{H}/dashboard")
    assert figures["date"] == datetime.now(SEOUL).date().isoformat()
    assert figures["visits"] == 0 and figures["usage_ratio"] is None


def test_only_the_health_commission_sees_the_dashboard(client, citizen, admin, make_hospital):
    client.get(f"{H}/dashboard", expected=401)
    citizen.api.get(f"{H}/dashboard", expected=403)
    admin.api.get(f"{H}/dashboard", expected=403)
    make_hospital().api.get(f"{H}/dashboard", expected=403)


def test_a_date_that_is_not_a_date_is_422(commission):
    commission.api.get(f"{H}/dashboard?date=yesterday", expected=422)
