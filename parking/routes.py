"""``/api/v1/parking`` (operators, gateways, citizens, anyone) and ``/ngsi-ld/v1`` (FIWARE).

Sensor gateways authenticate with their own keys (``X-API-Key: pgw_…``), which are parking's
objects, not core organisations' API keys: core's ``@requires`` cannot name them, so those views
are ``@requires(PUBLIC)`` and the service checks the gateway key first (one indexed query).
"""

import json
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView

from core.api import Blueprint
from core.auth.access import PUBLIC, current_principal, requires
from core.idempotency import HEADER, idempotent
from core.pagination import SelectPage
from parking import schemas as s
from parking.service import availability, ingest, ngsi, operators, reservations, stats

blp = Blueprint(
    "parking",
    __name__,
    url_prefix="/api/v1/parking",
    description="Lots, spaces, tariffs, sensors, availability and reservations.",
)
ngsi_blp = Blueprint(
    "ngsi-ld",
    __name__,
    url_prefix="/ngsi-ld/v1",
    description="Parking as FIWARE NGSI-LD ParkingSpot and OffStreetParking entities.",
)
GATEWAY_SECURITY: list[dict[str, list[str]]] = [{"gatewayKey": []}]
OPERATOR = "parking_operator"


# --- operators -----------------------------------------------------------------------------


@blp.route("/lots")
class Lots(MethodView):
    @requires(OPERATOR)
    @blp.response(200, s.LotSchema(many=True))
    def get(self) -> Any:
        """My lots"""
        return operators.list_lots(current_principal())

    @requires(OPERATOR)
    @blp.arguments(s.LotCreateSchema)
    @blp.response(201, s.LotSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a lot"""
        return operators.create_lot(current_principal(), data)


@blp.route("/lots/<lot_id>")
class LotItem(MethodView):
    @requires(OPERATOR)
    @blp.response(200, s.LotSchema)
    def get(self, lot_id: str) -> Any:
        """One of my lots"""
        return operators.get_lot(current_principal(), lot_id)

    @requires(OPERATOR)
    @blp.arguments(s.LotUpdateSchema)
    @blp.response(200, s.LotSchema)
    def patch(self, data: dict[str, Any], lot_id: str) -> Any:
        """Change one of my lots"""
        return operators.update_lot(current_principal(), lot_id, data)


@blp.route("/lots/<lot_id>/spaces")
class LotSpaces(MethodView):
    @requires(PUBLIC)
    @blp.response(200, s.SpaceStatusSchema(many=True))
    def get(self, lot_id: str) -> Any:
        """Every space of a lot with its status (free, occupied, closed, unknown)"""
        return availability.lot_spaces(lot_id)

    @requires(OPERATOR)
    @blp.arguments(s.SpaceCreateSchema(many=True))
    @blp.response(201, s.SpaceSchema(many=True))
    def post(self, items: list[dict[str, Any]], lot_id: str) -> Any:
        """Add spaces to my lot (up to 1,000 at once)"""
        return operators.create_spaces(current_principal(), lot_id, items)


@blp.route("/spaces/<space_id>")
class SpaceItem(MethodView):
    @requires(OPERATOR)
    @blp.arguments(s.SpaceUpdateSchema)
    @blp.response(200, s.SpaceSchema)
    def patch(self, data: dict[str, Any], space_id: str) -> Any:
        """Change a space (closed: true takes it out of service)"""
        return operators.update_space(current_principal(), space_id, data)


@blp.route("/lots/<lot_id>/tariff")
class LotTariff(MethodView):
    @requires(OPERATOR)
    @blp.response(200, s.TariffSchema)
    def get(self, lot_id: str) -> Any:
        """My lot's tariff"""
        return operators.get_tariff(current_principal(), lot_id)

    @requires(OPERATOR)
    @blp.arguments(s.TariffSchema)
    @blp.response(200, s.TariffSchema)
    def put(self, data: dict[str, Any], lot_id: str) -> Any:
        """Set my lot's tariff (optionally by time of day)"""
        return operators.set_tariff(current_principal(), lot_id, data)


@blp.route("/lots/<lot_id>/stats")
class LotStats(MethodView):
    @requires(OPERATOR)
    @blp.arguments(s.StatsQuerySchema, location="query")
    @blp.response(200, s.StatsSchema)
    def get(self, query: dict[str, Any], lot_id: str) -> Any:
        """Occupancy by hour, reservations, no-show rate and revenue of my lot"""
        return stats.lot_stats(current_principal(), lot_id, query["from_"], query["to"])


@blp.route("/lots/<lot_id>/reservations")
class LotReservations(MethodView):
    @requires(OPERATOR)
    @blp.response(200, s.ReservationSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, lot_id: str) -> Any:
        """Reservations of my lot, latest start first (paged)"""
        return reservations.lot_reservations(current_principal(), lot_id)


@blp.route("/sensors")
class Sensors(MethodView):
    @requires(OPERATOR)
    @blp.response(200, s.SensorSchema(many=True))
    def get(self) -> Any:
        """My sensors with the state each last reported"""
        return operators.list_sensors(current_principal())

    @requires(OPERATOR)
    @blp.arguments(s.SensorCreateSchema(many=True))
    @blp.response(201, s.SensorSchema(many=True))
    def post(self, items: list[dict[str, Any]]) -> Any:
        """Register sensors on my spaces (one per space)"""
        return operators.create_sensors(current_principal(), items)


@blp.route("/sensors/<sensor_id>")
class SensorItem(MethodView):
    @requires(OPERATOR)
    @blp.response(204)
    def delete(self, sensor_id: str) -> None:
        """Remove a sensor (its history goes with it)"""
        operators.remove_sensor(current_principal(), sensor_id)


@blp.route("/gateways")
class Gateways(MethodView):
    @requires(OPERATOR)
    @blp.response(200, s.GatewaySchema(many=True))
    def get(self) -> Any:
        """My gateway keys (prefixes only)"""
        return operators.list_gateways(current_principal())

    @requires(OPERATOR)
    @blp.arguments(s.GatewayCreateSchema)
    @blp.response(201, s.IssuedGatewaySchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a gateway key for my sensors (shown once)"""
        return operators.create_gateway(current_principal(), data["name"])


@blp.route("/gateways/<gateway_id>")
class GatewayItem(MethodView):
    @requires(OPERATOR)
    @blp.response(200, s.GatewaySchema)
    def delete(self, gateway_id: str) -> Any:
        """Revoke a gateway key"""
        return operators.revoke_gateway(current_principal(), gateway_id)


# --- sensor gateways -----------------------------------------------------------------------


@blp.route("/sensor-events")
class SensorEvents(MethodView):
    @requires(PUBLIC)  # a gateway key (parking's own), checked by the service
    @blp.doc(security=GATEWAY_SECURITY)
    @blp.arguments(s.SensorEventBatchSchema)
    @blp.response(200, s.IngestResultSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Report up to 1,000 occupancy events of my operator's sensors"""
        return ingest.receive_events(request.headers.get("X-API-Key"), data["events"])


@blp.route("/ttn/uplink")
class TtnUplink(MethodView):
    @requires(PUBLIC)  # a gateway key (parking's own), checked by the service
    @blp.doc(security=GATEWAY_SECURITY)
    @blp.response(200, s.IngestResultSchema)
    def post(self) -> Any:
        """The Things Stack v3 webhook: one uplink (port 1 state, port 2 heartbeat)"""
        return ingest.receive_uplink(request.headers.get("X-API-Key"), request.get_json())


# --- anyone --------------------------------------------------------------------------------


@blp.route("/availability")
class Availability(MethodView):
    @requires(PUBLIC)
    # an instance, made once: given the class, webargs would build one for every request
    @blp.arguments(s.AvailabilityQuerySchema(), location="query")
    @blp.response(200, s.AvailabilitySchema(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        """Lots around a point, nearest first, with free spaces now and in the window and a quote"""
        # The service answers with the JSON text of what the schema documents, remembered as
        # text: a marshmallow dump of the lots cost more than the rest of this hot request.
        return current_app.response_class(
            availability.availability(**query), mimetype="application/json"
        )


# --- citizens ------------------------------------------------------------------------------


@blp.route("/reservations")
class Reservations(MethodView):
    @requires("citizen")
    @blp.response(200, s.ReservationSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self) -> Any:
        """My reservations, latest start first (paged)"""
        return reservations.citizen_reservations(current_principal())

    @requires("citizen")
    @idempotent
    @blp.arguments(s.ReservationCreateSchema)
    @blp.response(201, s.ReservationPaymentSchema)
    @blp.alt_response(202, schema=s.ReservationPaymentSchema, description="3-D Secure needed")
    def post(self, data: dict[str, Any]) -> Any:
        """Reserve a space (or any free space of a lot) and pay at once"""
        key = request.headers.get(HEADER)
        return _with_payment(*reservations.reserve(current_principal(), data, key))


@blp.route("/reservations/<reservation_id>")
class ReservationItem(MethodView):
    @requires("citizen")
    @blp.response(200, s.ReservationSchema)
    def get(self, reservation_id: str) -> Any:
        """One of my reservations"""
        return reservations.own_reservation(current_principal(), reservation_id)


@blp.route("/reservations/<reservation_id>/pay")
class ReservationPay(MethodView):
    @requires("citizen")
    @idempotent
    @blp.arguments(s.PayRequestSchema)
    @blp.response(200, s.ReservationPaymentSchema)
    @blp.alt_response(202, schema=s.ReservationPaymentSchema, description="3-D Secure needed")
    def post(self, data: dict[str, Any], reservation_id: str) -> Any:
        """Pay a held reservation again (after a decline, or with another card)"""
        reservation, payment = reservations.pay(
            current_principal(), reservation_id, data.get("payment_method")
        )
        body, status = _with_payment(reservation, payment)
        return body, (202 if status == 202 else 200)


@blp.route("/reservations/<reservation_id>/cancel")
class ReservationCancel(MethodView):
    @requires("citizen")
    @idempotent
    @blp.response(200, s.ReservationSchema)
    def post(self, reservation_id: str) -> Any:
        """Cancel my reservation (free until shortly before the start, then the policy's fee)"""
        return reservations.cancel(current_principal(), reservation_id)


def _with_payment(reservation: Any, payment: Any) -> tuple[dict[str, Any], int]:
    body = {name: getattr(reservation, name) for name in s.ReservationSchema().fields}
    if payment is None:
        return body | {"payment": None}, 201
    body["payment"] = {
        "id": payment.id,
        "status": payment.status,
        "client_secret": reservations.client_secret(payment),
        "failure_message": payment.failure_message,
    }
    return body, (202 if payment.status == "requires_action" else 201)


# --- FIWARE NGSI-LD ------------------------------------------------------------------------


LD_JSON = "application/ld+json"


def _ld(body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, default=str), content_type=LD_JSON, headers=headers or {})


@ngsi_blp.route("/entities")
class NgsiEntities(MethodView):
    @requires(PUBLIC)
    @ngsi_blp.arguments(s.NgsiQuerySchema, location="query")
    @ngsi_blp.response(200, s.NgsiEntitySchema(many=True), content_type=LD_JSON)
    def get(self, query: dict[str, Any]) -> Response:
        """ParkingSpot or OffStreetParking entities (type, q, limit, offset, count, options)"""
        found, total = ngsi.entities(
            query.get("type"),
            query.get("q"),
            query["limit"],
            query["offset"],
            key_values="keyValues" in (query.get("options") or ""),
            count=query["count"],
        )
        headers = {"NGSILD-Results-Count": str(total)} if total is not None else None
        return _ld(found, headers)


@ngsi_blp.route("/entities/<entity_id>")
class NgsiEntity(MethodView):
    @requires(PUBLIC)
    @ngsi_blp.arguments(s.NgsiEntityQuerySchema, location="query")
    @ngsi_blp.response(200, s.NgsiEntitySchema, content_type=LD_JSON)
    def get(self, query: dict[str, Any], entity_id: str) -> Response:
        """One entity by its URN"""
        return _ld(ngsi.entity(entity_id, "keyValues" in (query.get("options") or "")))
