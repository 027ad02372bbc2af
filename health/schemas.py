"""Requests and responses of health: credit line, check-in, visits, charges, bills, face,
settlements, refunds, the dashboard."""

import marshmallow as ma
from flask_smorest.fields import Upload
from marshmallow import validate

from core.i18n import _
from core.schemas import StrictSchema
from health.models import BILL_STATUSES, INELIGIBLE_REASONS, VISIT_STATUSES

MINOR_UNITS = "Minor units of the currency (KRW has none: 5000 is ₩5,000)."
AMOUNT_MAX = 10**12


# --- credit line ---------------------------------------------------------------------------


class TermsSchema(ma.Schema):
    version = ma.fields.String()
    text = ma.fields.String()


class JoinSchema(StrictSchema):
    terms_version = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata={"description": "The version of the terms accepted (GET .../terms)"},
    )


class CreditLineSchema(ma.Schema):
    status = ma.fields.String(metadata={"description": "active, suspended or closed"})
    limit = ma.fields.Integer(metadata={"description": "The credit band's limit now"})
    used = ma.fields.Integer(metadata={"description": "Owed: open visits and unpaid bills"})
    available = ma.fields.Integer()
    currency = ma.fields.String()
    score = ma.fields.Integer()
    band = ma.fields.String(allow_none=True)
    face_enrolled = ma.fields.Boolean()
    terms_version = ma.fields.String()
    joined_at = ma.fields.AwareDateTime()
    suspended_at = ma.fields.AwareDateTime(allow_none=True)
    closed_at = ma.fields.AwareDateTime(allow_none=True)


class CheckinCodeSchema(ma.Schema):
    code = ma.fields.String(metadata={"description": "Show it as a QR code; works once"})
    expires_at = ma.fields.AwareDateTime()


# --- visits, charges, bills -----------------------------------------------------------------


class VisitCreateSchema(StrictSchema):
    checkin_code = ma.fields.String(required=True, validate=validate.Length(min=1, max=100))
    department = ma.fields.String(validate=validate.Length(min=1, max=100), allow_none=True)
    visited_at = ma.fields.AwareDateTime(
        allow_none=True, metadata={"description": "Default: now; never in the future"}
    )


class VisitQuerySchema(StrictSchema):
    status = ma.fields.String(validate=validate.OneOf(VISIT_STATUSES))


class ChargeItemSchema(StrictSchema):
    code = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    description = ma.fields.String(required=True, validate=validate.Length(min=1, max=255))
    quantity = ma.fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=10_000)
    )
    unit_price = ma.fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=0, max=AMOUNT_MAX),
        metadata={"description": MINOR_UNITS},
    )


class ChargesCreateSchema(StrictSchema):
    items = ma.fields.List(
        ma.fields.Nested(ChargeItemSchema), required=True, validate=validate.Length(min=1, max=100)
    )


class ChargeCorrectionSchema(StrictSchema):
    quantity = ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=10_000))
    unit_price = ma.fields.Integer(strict=True, validate=validate.Range(min=0, max=AMOUNT_MAX))
    description = ma.fields.String(validate=validate.Length(min=1, max=255))
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=255))

    @ma.validates_schema
    def _something_changes(self, data: dict, **_kwargs: object) -> None:
        if not {"quantity", "unit_price", "description"} & set(data):
            raise ma.ValidationError(
                _("Give the quantity, unit_price or description to correct."), "quantity"
            )


class ChargeVoidSchema(StrictSchema):
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=255))


class ChargeSchema(ma.Schema):
    id = ma.fields.String()
    line = ma.fields.Integer(metadata={"description": "1, 2, 3... in the order posted"})
    code = ma.fields.String()
    description = ma.fields.String()
    quantity = ma.fields.Integer()
    unit_price = ma.fields.Integer()
    amount = ma.fields.Integer()
    status = ma.fields.String(metadata={"description": "active or voided"})
    posted_at = ma.fields.AwareDateTime()
    voided_at = ma.fields.AwareDateTime(allow_none=True)
    corrected_at = ma.fields.AwareDateTime(allow_none=True)
    change_reason = ma.fields.String(allow_none=True)


class VisitSchema(ma.Schema):
    id = ma.fields.String()
    hospital_id = ma.fields.String()
    patient_name = ma.fields.String(allow_none=True)
    department = ma.fields.String(allow_none=True)
    visited_at = ma.fields.AwareDateTime()
    status = ma.fields.String(metadata={"description": "open (charges may be posted) or closed"})
    eligible = ma.fields.Boolean(metadata={"description": "Pay-later; false: pays at the desk"})
    reason = ma.fields.String(
        allow_none=True,
        metadata={"description": "Why not pay-later: " + ", ".join(INELIGIBLE_REASONS)},
    )
    available = ma.fields.Integer(metadata={"description": "Limit available at check-in"})
    currency = ma.fields.String()
    total = ma.fields.Integer()
    bill_id = ma.fields.String(allow_none=True)
    charges = ma.fields.List(ma.fields.Nested(ChargeSchema))
    created_at = ma.fields.AwareDateTime()
    closed_at = ma.fields.AwareDateTime(allow_none=True)


class HospitalSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String(allow_none=True)


class BillSchema(ma.Schema):
    id = ma.fields.String()
    bill_id = ma.fields.String()
    visit_id = ma.fields.String()
    hospital = ma.fields.Nested(HospitalSchema)
    status = ma.fields.String(metadata={"description": ", ".join(BILL_STATUSES)})
    currency = ma.fields.String()
    total = ma.fields.Integer()
    refunded_amount = ma.fields.Integer()
    items = ma.fields.List(ma.fields.Nested(ChargeSchema))
    issued_at = ma.fields.AwareDateTime()
    deadline = ma.fields.AwareDateTime()
    settled_at = ma.fields.AwareDateTime(allow_none=True)
    in_payment = ma.fields.Boolean(metadata={"description": "A payment of it is under way"})


class BillQuerySchema(StrictSchema):
    status = ma.fields.String(validate=validate.OneOf(BILL_STATUSES))


class BillRefundCreateSchema(StrictSchema):
    amount = ma.fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=AMOUNT_MAX),
        metadata={"description": "Default: all that is left"},
    )
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=255))


class BillRefundSchema(ma.Schema):
    id = ma.fields.String()
    bill_id = ma.fields.String()
    amount = ma.fields.Integer()
    reason = ma.fields.String()
    status = ma.fields.String(metadata={"description": "pending, succeeded or failed"})
    payment_refund_id = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()


# --- face and settlements ------------------------------------------------------------------


class ImageSchema(StrictSchema):
    image = Upload(required=True, metadata={"description": "A JPEG or PNG photo"})


class FaceEnrolSchema(ImageSchema):
    consent = ma.fields.Boolean(
        required=True,
        metadata={"description": "true: I consent to my face encoding being kept, encrypted"},
    )


class FaceSchema(ma.Schema):
    enrolled = ma.fields.Boolean()
    enrolled_at = ma.fields.AwareDateTime(allow_none=True)
    consented_at = ma.fields.AwareDateTime(allow_none=True)
    locked_until = ma.fields.AwareDateTime(allow_none=True)
    attempts_left = ma.fields.Integer()


class SettlementCreateSchema(ImageSchema):
    bill_ids = ma.fields.String(
        validate=validate.Length(max=4000),
        metadata={"description": "Comma-separated bill ids; default: every unpaid bill"},
    )


class SettlementSchema(ma.Schema):
    id = ma.fields.String()
    kind = ma.fields.String(metadata={"description": "face or automatic"})
    status = ma.fields.String(
        metadata={"description": "pending, requires_action, succeeded or failed"}
    )
    amount = ma.fields.Integer()
    currency = ma.fields.String()
    bill_ids = ma.fields.List(ma.fields.String())
    payment_id = ma.fields.String(allow_none=True)
    failure_code = ma.fields.String(allow_none=True)
    client_secret = ma.fields.String(
        metadata={"description": "Only when requires_action: finish 3-D Secure with Stripe's SDK"}
    )
    created_at = ma.fields.AwareDateTime()
    finished_at = ma.fields.AwareDateTime(allow_none=True)


# --- dashboard -----------------------------------------------------------------------------


class DashboardQuerySchema(StrictSchema):
    date = ma.fields.Date(metadata={"description": "A day in the city's timezone; default today"})


class DayFiguresSchema(ma.Schema):
    date = ma.fields.Date()
    pay_later_patients = ma.fields.Integer()
    visits = ma.fields.Integer(metadata={"description": "All visits posted by hospitals"})
    pay_later_visits = ma.fields.Integer()
    usage_ratio = ma.fields.Float(allow_none=True, metadata={"description": "pay-later / all"})
    bills_due = ma.fields.Integer(metadata={"description": "Bills whose deadline fell that day"})
    settled_in_window = ma.fields.Integer()
    settled_in_window_ratio = ma.fields.Float(allow_none=True)
    billed_amount = ma.fields.Integer()
    overdue_count = ma.fields.Integer(metadata={"description": "Unpaid past the deadline"})
    overdue_amount = ma.fields.Integer()


class HospitalFiguresSchema(ma.Schema):
    hospital_id = ma.fields.String()
    name = ma.fields.String(allow_none=True)
    visits = ma.fields.Integer()
    pay_later_visits = ma.fields.Integer()
    usage_ratio = ma.fields.Float(allow_none=True)
    bills_due = ma.fields.Integer()
    settled_in_window = ma.fields.Integer()
    settled_in_window_ratio = ma.fields.Float(allow_none=True)
    overdue_count = ma.fields.Integer()
    overdue_amount = ma.fields.Integer()


class DashboardSchema(DayFiguresSchema):
    timezone = ma.fields.String()
    currency = ma.fields.String()
    as_of = ma.fields.AwareDateTime()
    hospitals = ma.fields.List(ma.fields.Nested(HospitalFiguresSchema))
    series = ma.fields.List(
        ma.fields.Nested(DayFiguresSchema), metadata={"description": "The 30 days up to the date"}
    )
