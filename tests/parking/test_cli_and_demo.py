"""``flask demo seed`` makes a demo lot; ``flask parking simulate`` drives sensors over MQTT."""

from sqlalchemy import func, select

from core import db
from parking.models import ParkingLot, ParkingSensor, ParkingTariff
from tests.parking.conftest import P, wait_for
from tests.parking.test_mqtt import _statuses


def test_the_demo_seed_makes_a_lot_with_sensors_a_tariff_and_a_gateway_key_and_is_idempotent(
    app, client
):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "seed"])
    second = runner.invoke(args=["demo", "seed"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert "Demo Lot - Seoul City Hall" in second.output
    key = next(line for line in second.output.splitlines() if "parking gateway" in line)
    gateway_key = key.split("X-API-Key ")[1].strip()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ParkingLot)) == 1
        assert db.session.scalar(select(func.count()).select_from(ParkingSensor)) == 20
        assert db.session.scalar(select(func.count()).select_from(ParkingTariff)) == 1
    from core.clock import utcnow

    event = {"device_id": "demo-a01", "occupied": True, "observed_at": utcnow().isoformat()}
    result = client.post(
        f"{P}/sensor-events", {"events": [event]}, headers={"X-API-Key": gateway_key}
    )
    assert result["applied"] == 1


def test_simulate_creates_the_sensors_and_publishes_traffic_the_worker_applies(
    app, client, mqtt_config, start_worker
):
    start_worker()
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "parking",
            "simulate",
            "--sensors",
            "5",
            "--rate",
            "500",
            "--events",
            "12",
            "--seed",
            "1",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "published 12 events" in result.output
    with app.app_context():
        lot_id = db.session.scalar(select(ParkingLot.id))

    class _Lot:
        id = lot_id

    wait_for(lambda: "unknown" not in _statuses(client, _Lot))
