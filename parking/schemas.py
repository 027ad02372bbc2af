"""Requests and responses of parking."""

import marshmallow as ma
from marshmallow import validate

from core.i18n import _, _l
from core.schemas import StrictSchema
from parking.models import SPACE_KINDS

LAT = validate.Range(min=-90, max=90)
LON = validate.Range(min=-180, max=180)
HHMM = validate.Regexp(r"^([01][0-9]|2[0-3]):[0-5][0-9]$", error=_l("Not a time HH:MM."))
MONEY = validate.Range(min=0, max=100_000_000)


class LotCreateSchema(StrictSchema):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    address = ma.fields.String(required=True, validate=validate.Length(min=1, max=300))
    lat = ma.fields.Float(required=True, validate=LAT)
    lon = ma.fields.Float(required=True, validate=LON)
    opening_hours = ma.fields.String(
        validate=validate.Length(max=200),
        allow_none=True,
        metadata={"description": "Free text, e.g. Mo-Su 00:00-24:00."},
    )
    features = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=40)),
        validate=validate.Length(max=20),
        allow_none=True,
        metadata={"description": "e.g. covered, ev_charging, cctv."},
    )


class LotUpdateSchema(LotCreateSchema):
    name = ma.fields.String(validate=validate.Length(min=1, max=200))
    address = ma.fields.String(validate=validate.Length(min=1, max=300))
    lat = ma.fields.Float(validate=LAT)
    lon = ma.fields.Float(validate=LON)


class LotSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    address = ma.fields.String()
    lat = ma.fields.Float()
    lon = ma.fields.Float()
    opening_hours = ma.fields.String(allow_none=True)
    features = ma.fields.List(ma.fields.String(), allow_none=True)
    created_at = ma.fields.AwareDateTime()
    updated_at = ma.fields.AwareDateTime()


class SpaceCreateSchema(StrictSchema):
    code = ma.fields.String(required=True, validate=validate.Length(min=1, max=32))
    kind = ma.fields.String(load_default="car", validate=validate.OneOf(SPACE_KINDS))
    lat = ma.fields.Float(validate=LAT, allow_none=True)
    lon = ma.fields.Float(validate=LON, allow_none=True)


class SpaceUpdateSchema(StrictSchema):
    code = ma.fields.String(validate=validate.Length(min=1, max=32))
    kind = ma.fields.String(validate=validate.OneOf(SPACE_KINDS))
    lat = ma.fields.Float(validate=LAT, allow_none=True)
    lon = ma.fields.Float(validate=LON, allow_none=True)
    closed = ma.fields.Boolean()


class SpaceSchema(ma.Schema):
    id = ma.fields.String()
    lot_id = ma.fields.String()
    code = ma.fields.String()
    kind = ma.fields.String()
    lat = ma.fields.Float(allow_none=True)
    lon = ma.fields.Float(allow_none=True)
    closed = ma.fields.Boolean()


class SpaceStatusSchema(ma.Schema):
    id = ma.fields.String()
    code = ma.fields.String()
    kind = ma.fields.String()
    lat = ma.fields.Float(allow_none=True)
    lon = ma.fields.Float(allow_none=True)
    closed = ma.fields.Boolean()
    status = ma.fields.String(metadata={"description": "free, occupied, closed or unknown"})
    reserved_now = ma.fields.Boolean()
    device_id = ma.fields.String(allow_none=True)
    observed_at = ma.fields.AwareDateTime(allow_none=True)
    last_seen_at = ma.fields.AwareDateTime(allow_none=True)


class PeriodSchema(StrictSchema):
    from_ = ma.fields.String(required=True, data_key="from", attribute="from", validate=HHMM)
    to = ma.fields.String(required=True, validate=HHMM)
    unit_price = ma.fields.Integer(required=True, strict=True, validate=MONEY)


class TariffSchema(StrictSchema):
    lot_id = ma.fields.String(dump_only=True)
    free_minutes = ma.fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 1440))
    unit_minutes = ma.fields.Integer(strict=True, required=True, validate=validate.Range(1, 1440))
    unit_price = ma.fields.Integer(
        strict=True, required=True, validate=MONEY, metadata={"description": "Minor units."}
    )
    daily_max = ma.fields.Integer(strict=True, allow_none=True, validate=MONEY)
    currency = ma.fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z]{3}$"))
    periods = ma.fields.List(
        ma.fields.Nested(PeriodSchema),
        validate=validate.Length(max=24),
        metadata={"description": "Time-of-day unit prices in the city's timezone."},
    )


class SensorCreateSchema(StrictSchema):
    device_id = ma.fields.String(
        required=True, validate=validate.Regexp(r"^[A-Za-z0-9._:-]{1,100}$")
    )
    space_id = ma.fields.String(required=True, validate=validate.Length(min=1, max=36))


class SensorSchema(ma.Schema):
    id = ma.fields.String()
    device_id = ma.fields.String()
    space_id = ma.fields.String()
    occupied = ma.fields.Boolean(allow_none=True)
    observed_at = ma.fields.AwareDateTime(allow_none=True)
    last_seen_at = ma.fields.AwareDateTime(allow_none=True)
    created_at = ma.fields.AwareDateTime()


class GatewayCreateSchema(StrictSchema):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))


class GatewaySchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    prefix = ma.fields.String()
    created_at = ma.fields.AwareDateTime()
    revoked_at = ma.fields.AwareDateTime(allow_none=True)


class IssuedGatewaySchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    api_key = ma.fields.String(metadata={"description": "Shown once; send it as X-API-Key."})
    created_at = ma.fields.AwareDateTime()


class SensorEventSchema(StrictSchema):
    device_id = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    occupied = ma.fields.Boolean(required=True)
    observed_at = ma.fields.DateTime(required=True, metadata={"description": "ISO 8601."})


class SensorEventBatchSchema(StrictSchema):
    events = ma.fields.List(
        ma.fields.Nested(SensorEventSchema),
        required=True,
        validate=validate.Length(min=1, max=1000),
    )


class IngestResultSchema(ma.Schema):
    applied = ma.fields.Integer()
    duplicate = ma.fields.Integer()
    stale = ma.fields.Integer()
    rejected = ma.fields.Integer()
    heartbeat = ma.fields.Integer()


class AvailabilityQuerySchema(ma.Schema):
    lat = ma.fields.Float(required=True, validate=LAT)
    lon = ma.fields.Float(required=True, validate=LON)
    radius_m = ma.fields.Integer(load_default=1000, validate=validate.Range(1, 20_000))
    starts_at = ma.fields.AwareDateTime()
    ends_at = ma.fields.AwareDateTime()
    kind = ma.fields.String(validate=validate.OneOf(SPACE_KINDS))


class QuoteSchema(ma.Schema):
    amount = ma.fields.Integer()
    currency = ma.fields.String()


class AvailabilitySchema(ma.Schema):
    lot_id = ma.fields.String()
    name = ma.fields.String()
    address = ma.fields.String()
    lat = ma.fields.Float()
    lon = ma.fields.Float()
    distance_m = ma.fields.Integer()
    total_spaces = ma.fields.Integer()
    free_now = ma.fields.Integer()
    free_in_window = ma.fields.Integer()
    quote = ma.fields.Nested(QuoteSchema, allow_none=True)


class ReservationCreateSchema(StrictSchema):
    space_id = ma.fields.String(validate=validate.Length(min=1, max=36))
    lot_id = ma.fields.String(validate=validate.Length(min=1, max=36))
    starts_at = ma.fields.AwareDateTime(required=True)
    ends_at = ma.fields.AwareDateTime(required=True)
    vehicle_plate = ma.fields.String(required=True, validate=validate.Length(min=2, max=20))
    payment_method = ma.fields.String(
        validate=validate.Regexp(
            r"^pm_[A-Za-z0-9_]{1,200}$", error=_l("Not a Stripe PaymentMethod id.")
        )
    )

    @ma.validates_schema
    def _space_or_lot(self, data: dict[str, object], **_kwargs: object) -> None:
        if bool(data.get("space_id")) == bool(data.get("lot_id")):
            raise ma.ValidationError(_("Give exactly one of space_id and lot_id."), "space_id")


class PayRequestSchema(StrictSchema):
    payment_method = ma.fields.String(
        validate=validate.Regexp(
            r"^pm_[A-Za-z0-9_]{1,200}$", error=_l("Not a Stripe PaymentMethod id.")
        )
    )


class ReservationSchema(ma.Schema):
    id = ma.fields.String()
    lot_id = ma.fields.String()
    space_id = ma.fields.String()
    starts_at = ma.fields.AwareDateTime()
    ends_at = ma.fields.AwareDateTime()
    vehicle_plate = ma.fields.String()
    status = ma.fields.String(
        metadata={"description": "held, confirmed, active, completed, no_show, canceled, expired"}
    )
    quote_amount = ma.fields.Integer()
    currency = ma.fields.String()
    amount_paid = ma.fields.Integer()
    fee_amount = ma.fields.Integer()
    overstay_amount = ma.fields.Integer()
    payment_status = ma.fields.String(allow_none=True)
    payment_failure = ma.fields.String(allow_none=True)
    arrived_at = ma.fields.AwareDateTime(allow_none=True)
    departed_at = ma.fields.AwareDateTime(allow_none=True)
    closed_reason = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()


class PaymentStepSchema(ma.Schema):
    id = ma.fields.String()
    status = ma.fields.String()
    client_secret = ma.fields.String(
        allow_none=True, metadata={"description": "For 3-D Secure in the app (requires_action)."}
    )
    failure_message = ma.fields.String(allow_none=True)


class ReservationPaymentSchema(ReservationSchema):
    payment = ma.fields.Nested(PaymentStepSchema, allow_none=True)


class StatsQuerySchema(ma.Schema):
    from_ = ma.fields.AwareDateTime(required=True, data_key="from")
    to = ma.fields.AwareDateTime(required=True)


class HourSchema(ma.Schema):
    hour = ma.fields.AwareDateTime()
    occupancy = ma.fields.Float(allow_none=True)


class StatsSchema(ma.Schema):
    lot_id = ma.fields.String()
    from_ = ma.fields.AwareDateTime(data_key="from", attribute="from")
    to = ma.fields.AwareDateTime()
    sensors = ma.fields.Integer()
    occupancy_by_hour = ma.fields.List(ma.fields.Nested(HourSchema))
    reservations = ma.fields.Integer()
    by_status = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    no_show_rate = ma.fields.Float(allow_none=True)
    revenue = ma.fields.Integer()


class NgsiQuerySchema(ma.Schema):
    type = ma.fields.String()
    q = ma.fields.String()
    limit = ma.fields.Integer(load_default=20, validate=validate.Range(0, 1000))
    offset = ma.fields.Integer(load_default=0, validate=validate.Range(min=0, max=1_000_000_000))
    count = ma.fields.Boolean(load_default=False)
    options = ma.fields.String()


class NgsiEntitySchema(ma.Schema):
    """An NGSI-LD entity (for the spec: the views send ``application/ld+json`` themselves):
    ``id``, ``type``, ``@context`` and the entity's attributes, key-values or normalized."""

    class Meta:
        unknown = ma.INCLUDE

    id = ma.fields.String(metadata={"description": "urn:ngsi-ld:ParkingSpot:<id> or ..."})
    type = ma.fields.String(metadata={"description": "ParkingSpot or OffStreetParking"})


class NgsiEntityQuerySchema(ma.Schema):
    options = ma.fields.String()
