"""Sensor ingestion in ``/metrics``: events by source and outcome, and the ingest lag.

The counts live in the database (``parking_ingest_counts``), written with each batch, so that
the web process shows what the separate ingest workers did; this collector reads them at scrape
time and is added to core's per-app registry (``app.extensions["metrics"].registry``).
"""

import logging
from collections.abc import Iterator

from flask import Flask
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from parking.service import ingest

log = logging.getLogger("civic.parking.metrics")


class IngestCollector(Collector):
    def __init__(self, app: Flask) -> None:
        self._app = app

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        events = CounterMetricFamily(
            "parking_sensor_events",
            "Sensor events by source (http, ttn, mqtt) and outcome.",
            labels=["source", "outcome"],
        )
        lag = GaugeMetricFamily(
            "parking_ingest_lag_seconds",
            "Commit time minus the newest observation of the latest batch, by source.",
            labels=["source"],
        )
        latest: dict[str, tuple[object, int]] = {}
        try:
            with self._app.app_context():
                for row in ingest.ingest_counts():
                    events.add_metric([row.source, row.outcome], row.events)
                    if row.last_lag_ms is not None:
                        seen = latest.get(row.source)
                        if seen is None or row.updated_at > seen[0]:  # type: ignore[operator]
                            latest[row.source] = (row.updated_at, row.last_lag_ms)
        except Exception:
            log.exception("metrics: could not read ingest counts")
        for source, (_, lag_ms) in sorted(latest.items()):
            lag.add_metric([source], lag_ms / 1000)
        yield events
        yield lag


def init_app(app: Flask) -> None:
    app.extensions["metrics"].registry.register(IngestCollector(app))
