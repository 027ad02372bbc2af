"""What operators manage: lots, spaces, tariffs, sensors, gateway keys; scoped and audited."""

import hashlib
from datetime import timedelta

from sqlalchemy import select

from core import db
from core.audit.models import AuditEntry
from core.clock import utcnow
from parking.models import ParkingGateway
from tests.conftest import count_rows
from tests.parking.conftest import TARIFF, P


def _audit_actions(app, operator_id):
    with app.app_context():
        query = select(AuditEntry.action).where(AuditEntry.actor == f"organisation:{operator_id}")
        return set(db.session.scalars(query))


def test_an_operator_sets_up_a_lot_with_spaces_sensors_and_a_tariff_and_it_is_audited(
    app, operator
):
    api = operator.api
    lot = api.post(
        f"{P}/lots",
        {
            "name": "Jongno",
            "address": "1 Jong-ro",
            "lat": 37.57,
            "lon": 126.98,
            "opening_hours": "Mo-Su 06:00-24:00",
            "features": ["cctv"],
        },
        expected=201,
    )
    assert [x["id"] for x in api.get(f"{P}/lots")] == [lot["id"]]
    changed = api.request("PATCH", f"{P}/lots/{lot['id']}", 200, json={"name": "Jongno 1"})
    assert changed.get_json()["name"] == "Jongno 1"
    spaces = api.post(
        f"{P}/lots/{lot['id']}/spaces",
        [{"code": "A1"}, {"code": "E1", "kind": "ev"}, {"code": "D1", "kind": "disabled"}],
        expected=201,
    )
    assert [s["kind"] for s in spaces] == ["car", "ev", "disabled"]
    sensors = api.post(
        f"{P}/sensors", [{"device_id": "nw-1", "space_id": spaces[0]["id"]}], expected=201
    )
    assert sensors[0]["device_id"] == "nw-1"
    tariff = api.request("PUT", f"{P}/lots/{lot['id']}/tariff", 200, json=TARIFF).get_json()
    assert tariff["unit_price"] == 1000 and api.get(f"{P}/lots/{lot['id']}/tariff") == tariff
    closed = api.request("PATCH", f"{P}/spaces/{spaces[0]['id']}", 200, json={"closed": True})
    assert closed.get_json()["closed"] is True
    assert _audit_actions(app, operator.id) >= {
        "parking.lot_created",
        "parking.lot_updated",
        "parking.spaces_created",
        "parking.sensors_created",
        "parking.tariff_set",
        "parking.space_updated",
        "parking.gateway_created",
    }


def test_another_operators_lot_space_and_sensor_are_404(lot, make_operator):
    other = make_operator().api
    other.get(f"{P}/lots/{lot.id}", expected=404)
    other.request("PATCH", f"{P}/lots/{lot.id}", 404, json={"name": "mine"})
    other.request("PUT", f"{P}/lots/{lot.id}/tariff", 404, json=TARIFF)
    other.post(f"{P}/lots/{lot.id}/spaces", [{"code": "X"}], expected=404)
    other.request("PATCH", f"{P}/spaces/{lot.space(0)}", 404, json={"closed": True})
    other.post(f"{P}/sensors", [{"device_id": "x-1", "space_id": lot.space(0)}], expected=422)
    other.get(
        f"{P}/lots/{lot.id}/stats?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z", expected=404
    )
    assert other.get(f"{P}/lots") == []


def test_a_duplicate_space_code_or_device_writes_nothing(app, lot):
    before = count_rows(app)
    lot.operator.api.post(f"{P}/lots/{lot.id}/spaces", [{"code": "A000"}], expected=409)
    lot.operator.api.post(
        f"{P}/sensors", [{"device_id": lot.devices[0], "space_id": lot.space(1)}], expected=409
    )
    assert count_rows(app) == before


def test_spaces_come_up_to_a_thousand_at_once(operator):
    lot = operator.api.post(
        f"{P}/lots", {"name": "Big", "address": "x", "lat": 37.5, "lon": 127.0}, expected=201
    )
    many = [{"code": f"S{i}"} for i in range(1000)]
    assert len(operator.api.post(f"{P}/lots/{lot['id']}/spaces", many, expected=201)) == 1000
    operator.api.post(
        f"{P}/lots/{lot['id']}/spaces", [{"code": f"T{i}"} for i in range(1001)], expected=422
    )


def test_citizens_and_hospitals_may_not_manage_lots(citizen, make_organisation, client):
    citizen.api.get(f"{P}/lots", expected=403)
    _, key = make_organisation("hospital")
    client.as_api_key(key).get(f"{P}/lots", expected=403)
    client.get(f"{P}/lots", expected=401)


def test_a_gateway_key_is_shown_once_and_stored_only_as_a_hash(app, operator):
    issued = operator.api.post(f"{P}/gateways", {"name": "roof"}, expected=201)
    assert issued["api_key"].startswith("pgw_")
    listed = operator.api.get(f"{P}/gateways")
    assert all("api_key" not in g for g in listed)
    with app.app_context():
        row = db.session.get(ParkingGateway, issued["id"])
        assert row is not None
        assert row.key_hash == hashlib.sha256(issued["api_key"].encode()).hexdigest()
        assert issued["api_key"] not in (row.key_hash, row.prefix)
    revoked = operator.api.delete(f"{P}/gateways/{issued['id']}")
    assert revoked["revoked_at"] is not None


def test_lot_stats_give_occupancy_by_hour_from_the_sensor_history(lot, report):
    hour = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    report(lot, {0: True, 1: False}, at=hour)
    report(lot, {0: False}, at=hour + timedelta(minutes=30))
    start, end = hour.isoformat(), (hour + timedelta(hours=2)).isoformat()
    stats = lot.operator.api.get(
        f"{P}/lots/{lot.id}/stats", query_string={"from": start, "to": end}
    )
    first, second = stats["occupancy_by_hour"]
    assert (first["occupancy"], second["occupancy"]) == (0.25, 0.0)  # 30 of 120 sensor-minutes
    assert (stats["reservations"], stats["no_show_rate"], stats["revenue"]) == (0, None, 0)
