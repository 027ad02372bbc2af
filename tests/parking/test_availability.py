"""Finding a space: lots around a point, nearest first, free now and in the window, a quote."""

from datetime import timedelta

from core.clock import utcnow
from parking.models import ParkingTariff
from parking.service.pricing import quote
from tests.parking.conftest import P

A = f"{P}/availability"


def test_lots_within_the_radius_come_nearest_first_with_free_spaces_and_a_quote(
    client, operator, make_lot, report
):
    near = make_lot(operator, spaces=3, at=(37.5665, 126.9780), name="Near")
    far = make_lot(operator, spaces=2, at=(37.5700, 126.9780), name="Far")  # ~400 m north
    make_lot(operator, spaces=2, at=(37.6000, 126.9780), name="Out")  # ~3.7 km
    report(near, {0: True, 1: False, 2: False})
    report(far, {0: False, 1: False})
    start = utcnow() + timedelta(minutes=10)
    found = client.get(
        A,
        query_string={
            "lat": 37.5663,
            "lon": 126.9779,
            "radius_m": 1000,
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=2)).isoformat(),
        },
    )
    assert [lot["name"] for lot in found] == ["Near", "Far"]
    assert found[0]["distance_m"] < found[1]["distance_m"] < 1000
    assert (found[0]["free_now"], found[0]["free_in_window"], found[0]["total_spaces"]) == (2, 3, 3)
    assert found[0]["quote"] == {"amount": 12000, "currency": "KRW"}


def test_a_reservation_takes_its_space_out_of_free_now_and_of_the_window(
    app, client, lot, report, citizen
):
    from core import db
    from parking.models import Reservation

    report(lot, {0: False, 1: False, 2: False})
    now = utcnow()
    with app.app_context():
        db.session.add(
            Reservation(
                user_id=citizen.user.id,
                lot_id=lot.id,
                space_id=lot.space(0),
                starts_at=now - timedelta(minutes=5),
                ends_at=now + timedelta(hours=1),
                vehicle_plate="X",
                status="confirmed",
                quote_amount=0,
                currency="KRW",
                payment_attempts=0,
            )
        )
        db.session.commit()
    found = client.get(A, query_string={"lat": 37.5663, "lon": 126.9779, "radius_m": 300})
    assert (found[0]["free_now"], found[0]["free_in_window"]) == (2, 2)
    later = (now + timedelta(hours=2)).isoformat()
    found = client.get(A, query_string={"lat": 37.5663, "lon": 126.9779, "starts_at": later})
    assert found[0]["free_in_window"] == 3


def test_kind_filters_spaces_and_closed_spaces_are_never_free(client, operator, make_lot, report):
    lot = make_lot(operator, spaces=3, kinds=["car", "ev", "ev"])
    report(lot, {0: False, 1: False, 2: False})
    lot.operator.api.request("PATCH", f"{P}/spaces/{lot.space(2)}", 200, json={"closed": True})
    found = client.get(A, query_string={"lat": 37.5663, "lon": 126.9779, "kind": "ev"})
    assert (found[0]["total_spaces"], found[0]["free_now"], found[0]["free_in_window"]) == (2, 1, 1)


def test_bad_queries_are_422_naming_the_field(client):
    assert "lat" in client.get(A, expected=422, query_string={"lon": 1})["errors"]["query"]
    body = client.get(
        A,
        expected=422,
        query_string={
            "lat": 1,
            "lon": 1,
            "starts_at": "2030-01-01T10:00:00Z",
            "ends_at": "2030-01-01T09:00:00Z",
        },
    )
    assert "ends_at" in body["errors"]["query"]
    client.get(A, expected=422, query_string={"lat": 91, "lon": 1})


def test_spaces_of_a_lot_list_their_status_for_anyone(client, lot, report):
    report(lot, {1: True})
    spaces = client.get(f"{P}/lots/{lot.id}/spaces")
    assert [(s["code"], s["status"], s["reserved_now"]) for s in spaces] == [
        ("A000", "unknown", False),
        ("A001", "occupied", False),
        ("A002", "unknown", False),
    ]
    client.get(f"{P}/lots/nope/spaces", expected=404)


def _tariff(**kw):
    base = {
        "lot_id": "x",
        "free_minutes": 0,
        "unit_minutes": 10,
        "unit_price": 1000,
        "daily_max": None,
        "currency": "KRW",
        "periods": None,
    }
    return ParkingTariff(**(base | kw))


def test_the_quote_counts_free_minutes_started_units_and_the_daily_cap(app):
    start = utcnow()
    with app.app_context():
        assert quote(_tariff(), start, start + timedelta(minutes=61)) == 7000
        assert quote(_tariff(free_minutes=30), start, start + timedelta(minutes=30)) == 0
        assert quote(_tariff(free_minutes=30), start, start + timedelta(minutes=45)) == 2000
        capped = _tariff(daily_max=30000)
        assert quote(capped, start, start + timedelta(hours=10)) == 30000
        assert quote(capped, start, start + timedelta(hours=25)) == 36000


def test_time_of_day_periods_price_the_units_that_start_in_them(app):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    night = _tariff(periods=[{"from": "22:00", "to": "06:00", "unit_price": 200}])
    start = datetime(2026, 11, 23, 21, 30, tzinfo=ZoneInfo("Asia/Seoul"))
    with app.app_context():  # 21:30-22:30 Seoul: three day units, three night units
        assert quote(night, start, start + timedelta(hours=1)) == 3 * 1000 + 3 * 200


def test_the_same_question_within_the_cache_time_is_answered_from_memory(
    app, client, lot, report, monkeypatch
):
    monkeypatch.setitem(app.config, "PARKING_AVAILABILITY_CACHE_SECONDS", 60)
    query = {"lat": 37.5663, "lon": 126.9779, "radius_m": 300}
    report(lot, {0: False})
    assert client.get(A, query_string=query)[0]["free_now"] == 1
    report(lot, {1: False})
    assert client.get(A, query_string=query)[0]["free_now"] == 1  # from memory
    assert client.get(A, query_string=query | {"radius_m": 301})[0]["free_now"] == 2


def test_a_reservation_is_seen_at_once_though_the_answer_is_remembered(
    app, client, lot, report, citizen, stripe_server, monkeypatch
):
    from tests.payments.conftest import CONSENT, METHODS

    monkeypatch.setitem(app.config, "PARKING_AVAILABILITY_CACHE_SECONDS", 60)
    citizen.api.post(METHODS, {"payment_method": "pm_card_visa", **CONSENT}, expected=201)
    report(lot, {0: False, 1: False})
    start = utcnow() + timedelta(minutes=30)
    window = {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=1)).isoformat()}
    query = {"lat": 37.5663, "lon": 126.9779, "radius_m": 300} | window
    assert (client.get(A, query_string=query)[0]["free_in_window"]) == 3
    report(lot, {2: False})
    assert client.get(A, query_string=query)[0]["free_now"] == 2  # from memory
    booking = {"space_id": lot.space(0), "vehicle_plate": "12가3456"} | window
    assert citizen.api.post(f"{P}/reservations", booking, expected=201)["status"] == "confirmed"
    found = client.get(A, query_string=query)[0]
    assert (found["free_now"], found["free_in_window"]) == (3, 2)


def test_threads_asking_one_question_as_its_answer_expires_count_it_once(app, monkeypatch):
    import threading
    import time

    from parking.service import availability

    monkeypatch.setitem(app.config, "PARKING_AVAILABILITY_CACHE_SECONDS", 60)
    counted = []

    def slow_count(*args):
        counted.append(args)
        time.sleep(0.3)
        return []

    monkeypatch.setattr(availability, "_fresh", slow_count)
    answers = []

    def ask():
        with app.app_context():
            answers.append(availability.availability(37.5663, 126.9779, 300))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert (len(counted), answers) == (1, ["[]\n"] * 4)


def test_while_one_thread_counts_an_expired_answer_again_the_others_answer_with_it(
    app, monkeypatch
):
    import threading
    import time

    from parking.service import availability

    monkeypatch.setitem(app.config, "PARKING_AVAILABILITY_CACHE_SECONDS", 60)
    started = threading.Event()

    def slow_count(*args):
        started.set()
        time.sleep(2.0)  # far longer than the answer below may take, on a loaded machine too
        return []

    monkeypatch.setattr(availability, "_fresh", slow_count)
    with app.app_context():
        key = (37.5663, 126.9779, 300, None, None, None)
        app.extensions["parking_availability_cache"] = {key: (0.0, "expired\n")}
        counting = threading.Thread(target=lambda: _ask_in(app, availability))
        counting.start()
        assert started.wait(5)
        asked_at = time.monotonic()
        assert availability.availability(37.5663, 126.9779, 300) == "expired\n"
        assert time.monotonic() - asked_at < 1.0
        counting.join(5)
        assert availability.availability(37.5663, 126.9779, 300) == "[]\n"


def _ask_in(app, availability):
    with app.app_context():
        availability.availability(37.5663, 126.9779, 300)
