"""What the parking benchmarks share: a throw-away database, a migrated app, bulk lots with
spaces and sensors, free ports. Not a benchmark itself (``make bench`` runs ``bench_*.py``)."""

import math
import os
import random
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402

from devtools.postgres import scratch_database  # noqa: E402

PG_SERVER = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MQTT_URL = os.environ.get("BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")
SEOUL = (37.5663, 126.9779)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def database(backend: str = "postgresql", tmp: Path | None = None) -> Iterator[str]:
    """A fresh, empty database for one run, dropped afterwards."""
    name = f"parking_bench_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        path = (tmp or Path(tempfile.gettempdir())) / f"{name}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    with scratch_database(PG_SERVER, "parking_bench") as url:
        yield url


def migrated_app(url: str, **config: Any) -> Any:
    """The app on ``url``, migrated to head."""
    from app import create_app
    from core import migrations

    app = create_app(
        {
            "DATABASE_URL": url,
            "TESTING": True,
            "LOG_LEVEL": "WARNING",
            "RATELIMIT_ENABLED": False,
            **config,
        }
    )
    with app.app_context():
        migrations.upgrade()
    return app


def bulk_lots(
    app: Any, lots: int, spaces_per_lot: int, spread_m: float = 5000.0, seed: int = 7
) -> dict[str, Any]:
    """``lots`` lots scattered within ``spread_m`` of Seoul City Hall, each with spaces and a
    sensor per space (written with bulk inserts: set-up, not measured). Returns the operator id,
    the lot ids and the device ids."""
    from core import db
    from core.auth import service as auth
    from parking.models import ParkingLot, ParkingSensor, ParkingSpace, ParkingTariff

    rng = random.Random(seed)
    now = datetime.now(UTC)
    with app.app_context():
        operator = auth.create_organisation(
            f"Bench Parking {uuid.uuid4().hex[:6]}", "parking_operator"
        )
        key = auth.issue_api_key(operator.id, "bench").secret
        lot_rows, space_rows, sensor_rows, tariff_rows = [], [], [], []
        for n in range(lots):
            distance, angle = spread_m * math.sqrt(rng.random()), rng.random() * 2 * math.pi
            lat = SEOUL[0] + distance * math.cos(angle) / 111_320
            lon = SEOUL[1] + distance * math.sin(angle) / (
                111_320 * math.cos(math.radians(SEOUL[0]))
            )
            lot_id = str(uuid.uuid4())
            lot_rows.append(
                {
                    "id": lot_id,
                    "operator_id": operator.id,
                    "name": f"Bench lot {n}",
                    "address": f"{n} Bench-ro",
                    "lat": lat,
                    "lon": lon,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            tariff_rows.append(
                {
                    "lot_id": lot_id,
                    "free_minutes": 10,
                    "unit_minutes": 10,
                    "unit_price": 1000,
                    "daily_max": 30000,
                    "currency": "KRW",
                    "updated_at": now,
                }
            )
            for i in range(spaces_per_lot):
                space_id = str(uuid.uuid4())
                space_rows.append(
                    {
                        "id": space_id,
                        "lot_id": lot_id,
                        "code": f"S{i:04d}",
                        "kind": "ev" if i % 10 == 0 else "car",
                        "closed": False,
                        "created_at": now,
                    }
                )
                occupied = rng.random() < 0.6
                sensor_rows.append(
                    {
                        "id": str(uuid.uuid4()),
                        "device_id": f"b{n:03d}-{i:04d}",
                        "space_id": space_id,
                        "lot_id": lot_id,
                        "operator_id": operator.id,
                        "occupied": occupied,
                        "observed_at": now,
                        "changed_at": now,
                        "last_seen_at": now,
                        "created_at": now,
                    }
                )
        for model, rows in (
            (ParkingLot, lot_rows),
            (ParkingTariff, tariff_rows),
            (ParkingSpace, space_rows),
            (ParkingSensor, sensor_rows),
        ):
            for start in range(0, len(rows), 5000):
                db.session.execute(insert(model), rows[start : start + 5000])
        db.session.commit()
        if db.is_postgresql():
            with db.engine().connect() as connection:
                connection.execute(text("ANALYZE"))
                connection.commit()
    return {
        "operator_id": operator.id,
        "operator_key": key,
        "lot_ids": [row["id"] for row in lot_rows],
        "devices": [row["device_id"] for row in sensor_rows],
        "space_ids": [row["id"] for row in space_rows],
    }
