"""A mixed workload for locust (``make load`` runs it headless; see bench/load/run.py).

Who does what, against a world made by ``bench/load/run.py`` (``LOAD_WORLD``: a JSON file with
the tokens and keys):

- citizens search for a space (near, and for a window) and reserve one (``Idempotency-Key``,
  paid at once with a test card), then cancel it;
- sensor gateways post batches of events over HTTP (``X-API-Key: pgw_…``);
- hospitals check a patient in (the patient's check-in code), post a charge and close the visit;
- patients settle their bills by face (a photo from tests/health/fixtures/faces, cropped
  differently each time: a new capture, not a replay);
- officials process applications: a citizen applies for a tax certificate, the official finds
  it in the department's queue, claims it and approves it (a signed certificate).

A 4xx the workload expects (a space taken, nothing left to settle) is a success; anything else
not 2xx is an error.
"""

import itertools
import json
import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from locust import HttpUser, between, task

from devtools.rehearse import photo_variant

ROOT = Path(__file__).resolve().parents[2]
FACES = ROOT / "tests" / "health" / "fixtures" / "faces"
WORLD: dict[str, Any] = json.loads(Path(os.environ["LOAD_WORLD"]).read_text())
PHOTOS = [(FACES / name).read_bytes() for name in ("obama2.jpg", "obama3.jpg")]
_citizens = itertools.cycle(WORLD["citizens"])
_patients = itertools.cycle(WORLD["patients"])
_devices = WORLD["devices"]
_observed = {"last": datetime.now(UTC)}
RNG = random.Random()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _observed_at() -> str:
    """A moment later than every one handed out before (one event per sensor and moment)."""
    moment = max(datetime.now(UTC), _observed["last"] + timedelta(microseconds=1))
    _observed["last"] = moment
    return moment.isoformat()


class Citizen(HttpUser):
    weight = 6
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.token = next(_citizens)

    @task(3)
    def search(self) -> None:
        lat = WORLD["lat"] + random.uniform(-0.01, 0.01)
        lon = WORLD["lon"] + random.uniform(-0.01, 0.01)
        self.client.get(
            f"/api/v1/parking/availability?lat={lat:.5f}&lon={lon:.5f}",
            name="GET /parking/availability",
        )

    @task(1)
    def search_window(self) -> None:
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=2)
        end = start + timedelta(hours=1)
        self.client.get(
            f"/api/v1/parking/availability?lat={WORLD['lat']}&lon={WORLD['lon']}&kind=car"
            f"&starts_at={start:%Y-%m-%dT%H:%M}Z&ends_at={end:%Y-%m-%dT%H:%M}Z",
            name="GET /parking/availability (window)",
        )

    @task(1)
    def reserve_and_cancel(self) -> None:
        start = (datetime.now(UTC) + timedelta(minutes=random.randint(90, 6 * 24 * 60))).replace(
            second=0, microsecond=0
        )
        with self.client.post(
            "/api/v1/parking/reservations",
            json={
                "lot_id": WORLD["lot_id"],
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(minutes=60)).isoformat(),
                "vehicle_plate": f"{random.randint(10, 99)}가{random.randint(1000, 9999)}",
                "payment_method": "pm_card_visa",
            },
            headers={**_bearer(self.token), "Idempotency-Key": str(uuid.uuid4())},
            name="POST /parking/reservations",
            catch_response=True,
        ) as response:
            if response.status_code == 409:  # the lot is full for that window: an answer
                response.success()
                return
        if response.status_code == 201:
            self.client.post(
                f"/api/v1/parking/reservations/{response.json()['id']}/cancel",
                headers={**_bearer(self.token), "Idempotency-Key": str(uuid.uuid4())},
                name="POST /parking/reservations/{id}/cancel",
            )


class SensorGateway(HttpUser):
    fixed_count = 2
    wait_time = between(0.5, 1.0)

    @task
    def post_events(self) -> None:
        events = [
            {
                "device_id": random.choice(_devices),
                "occupied": random.random() < 0.5,
                "observed_at": _observed_at(),
            }
            for _ in range(20)
        ]
        self.client.post(
            "/api/v1/parking/sensor-events",
            json={"events": events},
            headers={"X-API-Key": WORLD["gateway_key"]},
            name="POST /parking/sensor-events (20)",
        )


class Hospital(HttpUser):
    fixed_count = 2
    wait_time = between(0.5, 1.5)

    @task
    def treat(self) -> None:
        patient = next(_patients)
        code = self.client.get(
            "/api/v1/health/checkin-code", headers=_bearer(patient), name="GET /health/checkin-code"
        )
        if code.status_code != 200:
            return
        key = {"X-API-Key": WORLD["hospital_key"]}
        visit = self.client.post(
            "/api/v1/health/visits",
            json={"checkin_code": code.json()["code"], "department": "Internal medicine"},
            headers={**key, "Idempotency-Key": str(uuid.uuid4())},
            name="POST /health/visits",
        )
        if visit.status_code != 201:
            return
        visit_id = visit.json()["id"]
        item = {"code": "CONSULT", "description": "Consultation", "quantity": 1}
        self.client.post(
            f"/api/v1/health/visits/{visit_id}/charges",
            json={"items": [{**item, "unit_price": random.choice([1000, 2000, 3000])}]},
            headers={**key, "Idempotency-Key": str(uuid.uuid4())},
            name="POST /health/visits/{id}/charges",
        )
        self.client.post(
            f"/api/v1/health/visits/{visit_id}/close",
            headers={**key, "Idempotency-Key": str(uuid.uuid4())},
            name="POST /health/visits/{id}/close",
        )


class Patient(HttpUser):
    fixed_count = 2
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        self.token = next(_patients)

    @task
    def settle_by_face(self) -> None:
        with self.client.post(
            "/api/v1/health/settlements",
            files={"image": ("face.jpg", photo_variant(random.choice(PHOTOS), RNG), "image/jpeg")},
            headers={**_bearer(self.token), "Idempotency-Key": str(uuid.uuid4())},
            name="POST /health/settlements (face)",
            catch_response=True,
        ) as response:
            if response.status_code == 409:  # nothing left to settle: an answer
                response.success()


class Official(HttpUser):
    fixed_count = 2
    wait_time = between(1.0, 2.0)

    def on_start(self) -> None:
        self.citizen = next(_citizens)

    @task
    def process(self) -> None:
        answers = {"full_name": "Load Citizen", "birth_date": "1990-01-01", "purpose": "bank"}
        self.client.post(
            "/api/v1/civic/applications",
            files={
                "service": (None, "TAX-CERT"),
                "answers": (None, json.dumps(answers)),
            },
            headers={**_bearer(self.citizen), "Idempotency-Key": str(uuid.uuid4())},
            name="POST /civic/applications",
        )
        official = _bearer(WORLD["official"])
        queue = self.client.get(
            "/api/v1/civic/queue?status=submitted", headers=official, name="GET /civic/queue"
        )
        if queue.status_code != 200 or not queue.json():
            return
        application = random.choice(queue.json())["id"]
        with self.client.post(
            f"/api/v1/civic/applications/{application}/claim",
            headers={**official, "Idempotency-Key": str(uuid.uuid4())},
            name="POST /civic/applications/{id}/claim",
            catch_response=True,
        ) as claimed:
            if claimed.status_code == 409:  # the other official took it first: an answer
                claimed.success()
                return
        if claimed.status_code == 200:
            self.client.post(
                f"/api/v1/civic/applications/{application}/approve",
                json={"note": "ok"},
                headers={**official, "Idempotency-Key": str(uuid.uuid4())},
                name="POST /civic/applications/{id}/approve",
            )
