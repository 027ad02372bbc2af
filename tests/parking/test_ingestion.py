"""Sensor events over HTTP and The Things Stack webhooks: applied, duplicate, stale, rejected;
last_seen; offline sensors; append-only history; the counters in /metrics."""

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DatabaseError

from core import db
from core.clock import utcnow
from parking.models import ParkingSensor, SensorEvent
from parking.ttn import encode_uplink
from tests.conftest import count_rows
from tests.parking.conftest import P

EVENTS = f"{P}/sensor-events"
TTN = f"{P}/ttn/uplink"


def _history(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(SensorEvent))


def _statuses(client, lot):
    return [space["status"] for space in client.get(f"{P}/lots/{lot.id}/spaces")]


def test_a_gateway_reports_and_the_spaces_show_it(client, lot, report):
    assert report(lot, {0: True, 1: False}) == {
        "applied": 2,
        "duplicate": 0,
        "stale": 0,
        "rejected": 0,
        "heartbeat": 0,
    }
    assert _statuses(client, lot) == ["occupied", "free", "unknown"]


def test_the_same_event_twice_is_a_duplicate_and_is_stored_once(app, lot, report):
    at = utcnow()
    report(lot, {0: True}, at=at)
    assert report(lot, {0: True}, at=at)["duplicate"] == 1
    assert _history(app) == 1


def test_an_older_event_is_kept_in_history_but_does_not_change_the_state(app, client, lot, report):
    now = utcnow()
    report(lot, {0: True}, at=now)
    result = report(lot, {0: False}, at=now - timedelta(minutes=1))
    assert (result["stale"], result["applied"]) == (1, 0)
    assert _statuses(client, lot)[0] == "occupied"
    assert _history(app) == 2


def test_events_of_one_sensor_out_of_order_in_one_batch_end_in_the_newest_state(client, lot):
    now = utcnow()
    events = [
        {"device_id": lot.devices[0], "occupied": False, "observed_at": now.isoformat()},
        {
            "device_id": lot.devices[0],
            "occupied": True,
            "observed_at": (now - timedelta(seconds=5)).isoformat(),
        },
    ]
    result = client.post(
        EVENTS, {"events": events}, headers={"X-API-Key": lot.operator.gateway_key}
    )
    assert result["applied"] == 2
    assert _statuses(client, lot)[0] == "free"


def test_unknown_sensors_and_those_of_another_operator_are_rejected_and_counted(
    app, client, lot, make_operator, make_lot
):
    other_lot = make_lot(make_operator())
    now = utcnow().isoformat()
    events = [
        {"device_id": "nobody-knows-me", "occupied": True, "observed_at": now},
        {"device_id": other_lot.devices[0], "occupied": True, "observed_at": now},
        {"device_id": lot.devices[0], "occupied": True, "observed_at": now},
    ]
    result = client.post(
        EVENTS, {"events": events}, headers={"X-API-Key": lot.operator.gateway_key}
    )
    assert (result["rejected"], result["applied"]) == (2, 1)
    assert _statuses(client, other_lot)[0] == "unknown"
    metrics = client.request("GET", "/metrics", 200).get_data(as_text=True)
    assert 'parking_sensor_events_total{outcome="rejected",source="http"} 2.0' in metrics
    assert 'parking_sensor_events_total{outcome="applied",source="http"} 1.0' in metrics
    assert 'parking_ingest_lag_seconds{source="http"}' in metrics


def test_an_event_from_the_future_is_rejected(client, lot, report):
    assert report(lot, {0: True}, at=utcnow() + timedelta(hours=1))["rejected"] == 1
    assert _statuses(client, lot)[0] == "unknown"


@pytest.mark.parametrize("key", [None, "pgw_nope_nope", "ck_abc_def", "garbage"])
def test_a_missing_or_wrong_gateway_key_is_401_and_writes_nothing(app, client, lot, key):
    before = count_rows(app)
    headers = {"X-API-Key": key} if key else {}
    body = {
        "events": [
            {"device_id": lot.devices[0], "occupied": True, "observed_at": utcnow().isoformat()}
        ]
    }
    client.post(EVENTS, body, expected=401, headers=headers)
    assert count_rows(app) == before


def test_a_revoked_gateway_key_stops_working(client, lot, report):
    gateway = lot.operator.api.get(f"{P}/gateways")[0]
    lot.operator.api.delete(f"{P}/gateways/{gateway['id']}")
    report(lot, {0: True}, expected=401)


def test_a_batch_over_1000_events_is_422(client, lot):
    event = {"device_id": lot.devices[0], "occupied": True, "observed_at": utcnow().isoformat()}
    client.post(
        EVENTS,
        {"events": [event] * 1001},
        expected=422,
        headers={"X-API-Key": lot.operator.gateway_key},
    )


def test_a_silent_sensor_goes_offline_and_its_space_shows_unknown(client, lot, report):
    report(lot, {0: False})
    with time_machine.travel(utcnow() + timedelta(seconds=1201), tick=False):
        assert _statuses(client, lot)[0] == "unknown"
        found = client.get(f"{P}/availability?lat=37.5663&lon=126.9779&radius_m=500")
        assert found[0]["free_now"] == 0


def test_any_message_moves_last_seen_even_a_stale_one(app, lot, report):
    now = utcnow()
    report(lot, {0: True}, at=now)
    with time_machine.travel(now + timedelta(minutes=10), tick=False):
        report(lot, {0: False}, at=now - timedelta(minutes=1))
    with app.app_context():
        sensor = db.session.scalars(
            select(ParkingSensor).where(ParkingSensor.device_id == lot.devices[0])
        ).one()
        assert sensor.last_seen_at is not None and sensor.last_seen_at >= now + timedelta(
            minutes=10
        )
        assert sensor.occupied is True


def test_the_history_is_append_only(app, lot, report):
    report(lot, {0: True})
    with app.app_context(), pytest.raises(DatabaseError, match="append-only"):
        db.session.execute(update(SensorEvent).values(occupied=False))
    with app.app_context():
        db.session.rollback()
        assert db.session.scalar(select(SensorEvent.occupied)) is True
        db.session.execute(text("SELECT 1"))


def test_ttn_webhook_uplinks_set_state_and_heartbeats_only_refresh_last_seen(app, client, lot):
    headers = {"X-API-Key": lot.operator.gateway_key}
    now = utcnow()
    occupied = client.post(TTN, encode_uplink(lot.devices[0], True, now), headers=headers)
    assert occupied["applied"] == 1
    again = client.post(TTN, encode_uplink(lot.devices[0], True, now), headers=headers)
    assert again["duplicate"] == 1  # the same uplink delivered twice
    heartbeat = encode_uplink(lot.devices[1], None, now)
    assert client.post(TTN, heartbeat, headers=headers)["heartbeat"] == 1
    assert _statuses(client, lot)[:2] == ["occupied", "unknown"]
    garbage = {"end_device_ids": {"device_id": lot.devices[0]}, "uplink_message": {"f_port": 9}}
    assert client.post(TTN, garbage, headers=headers)["rejected"] == 1


def test_ttn_bit_seven_of_the_first_byte_is_occupancy(client, lot):
    headers = {"X-API-Key": lot.operator.gateway_key}
    uplink = encode_uplink(lot.devices[0], False, utcnow())
    uplink["uplink_message"]["frm_payload"] = "fw=="  # 0x7f: bit 7 clear -> free
    client.post(TTN, uplink, headers=headers)
    assert _statuses(client, lot)[0] == "free"
