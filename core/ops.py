"""Operations: ``/healthz`` (the process is up), ``/readyz`` (database reachable and migrated),
``/metrics`` (Prometheus: requests by route and status, latency, scheduler job runs).

Metric labels are bounded: the method is one of the standard ones or ``OTHER``, the route is a
URL rule template of the app or ``unmatched``, so no request can add label sets at will.
``/metrics`` can be closed to all but a bearer token (``METRICS_TOKEN``) and/or some networks
(``METRICS_ALLOWED_NETWORKS``, checked against the client address ProxyFix found).
"""

import hmac
import ipaddress
import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from core import migrations
from core import scheduler as jobs
from core.auth.access import PUBLIC, requires
from core.config import metrics_networks
from core.errors import Forbidden, Unauthorized
from core.i18n import _l

log = logging.getLogger("civic.ops")
blp = Blueprint("ops", __name__)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
UNMATCHED_ROUTE = "unmatched"


@blp.get("/healthz")
@requires(PUBLIC)
def healthz() -> Response:
    """Liveness: the process answers."""
    return jsonify(status="ok")


@blp.get("/readyz")
@requires(PUBLIC)
def readyz() -> tuple[Response, int]:
    """Readiness: the database answers and its schema is at the migrations' head."""
    try:
        current, head = migrations.current_revisions(), migrations.head_revisions()
    except Exception:
        log.exception("readiness check: database unreachable")
        return jsonify(status="unavailable", database="unreachable"), 503
    if current != head:
        body = {"status": "unavailable", "database": "not migrated", "at": sorted(current)}
        return jsonify(body | {"head": sorted(head)}), 503
    return jsonify(status="ready", database="ok", revision=sorted(current)), 200


@blp.get("/metrics")
@requires(PUBLIC)
def metrics() -> Response:
    """Prometheus exposition of this process's counters and the scheduler's job runs."""
    _check_metrics_access()
    registry = current_app.extensions["metrics"].registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _check_metrics_access() -> None:
    """Apply ``METRICS_TOKEN`` and ``METRICS_ALLOWED_NETWORKS`` when they are set."""
    networks = current_app.extensions["metrics"].allowed_networks
    if networks:
        try:
            address = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            address = None
        if address is None or not any(address in network for network in networks):
            raise Forbidden(_l("Metrics are not served to this address."))
    token = current_app.config["METRICS_TOKEN"]
    if token:
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise Unauthorized(_l("Metrics need the metrics token."))


class _JobRunsCollector(Collector):
    """Job run counts from the database, so a separate scheduler process shows up here too."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "civic_job_runs", "Scheduler job runs by outcome.", labels=["job", "outcome"]
        )
        try:
            with self._app.app_context():
                for stat in jobs.job_stats():
                    family.add_metric([stat.job_id, "ok"], stat.runs_ok)
                    family.add_metric([stat.job_id, "failed"], stat.runs_failed)
        except Exception:
            log.exception("metrics: could not read job stats")
        yield family


class Metrics:
    """One registry per app (tests build many apps in one process)."""

    def __init__(self, app: Flask) -> None:
        self.allowed_networks = metrics_networks(app.config)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "civic_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "civic_http_request_duration_seconds",
            "HTTP request latency.",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(_JobRunsCollector(app))


def init_app(app: Flask) -> None:
    """Count and time every request."""
    app.extensions["metrics"] = Metrics(app)
    app.register_blueprint(blp)

    recorder: Any = app.extensions["metrics"]
    series: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # bounded: so are the labels

    @app.after_request
    def _observe(response: Response) -> Response:
        rule = request.url_rule
        route = rule.rule if rule is not None else UNMATCHED_ROUTE
        method = request.method if request.method in METHODS else OTHER_METHOD
        key = (method, route, response.status_code)
        children = series.get(key)
        if children is None:
            children = series[key] = (
                recorder.requests.labels(method, route, response.status_code),
                recorder.latency.labels(method, route),
            )
        # ``core.logs`` stamps the start of every request (one hook fewer per request).
        elapsed = time.perf_counter() - g.get("request_started", time.perf_counter())
        children[0].inc()
        children[1].observe(elapsed)
        return response
