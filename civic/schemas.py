"""Requests and responses of civic: the credit score, the catalog, applications, certificates."""

import marshmallow as ma
from marshmallow import validate

from core.schemas import StrictSchema

# --- credit score --------------------------------------------------------------------------


class CreditEventCreateSchema(StrictSchema):
    user_id = ma.fields.String(required=True, validate=validate.Length(min=1, max=36))
    delta = ma.fields.Integer(
        required=True, strict=True, metadata={"description": "Points added (negative: removed)"}
    )
    reason = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "A reason code, e.g. bill_overdue, bill_paid, volunteering"},
    )
    agency = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "The issuing agency"},
    )
    evidence = ma.fields.String(
        allow_none=True,
        validate=validate.Length(max=255),
        metadata={"description": "A reference to the evidence (a case or document number)"},
    )


class ScoreEventSchema(ma.Schema):
    id = ma.fields.String()
    user_id = ma.fields.String()
    delta = ma.fields.Integer()
    reason = ma.fields.String()
    agency = ma.fields.String()
    evidence = ma.fields.String(allow_none=True)
    score_after = ma.fields.Integer()
    created_at = ma.fields.AwareDateTime()


class HistoryEntrySchema(ma.Schema):
    delta = ma.fields.Integer()
    reason = ma.fields.String()
    agency = ma.fields.String()
    evidence = ma.fields.String(allow_none=True)
    score_after = ma.fields.Integer()
    created_at = ma.fields.AwareDateTime()


class StandingSchema(ma.Schema):
    score = ma.fields.Integer()
    band = ma.fields.String(allow_none=True, metadata={"description": "e.g. 600-699; null below"})
    limit = ma.fields.Integer(metadata={"description": "Pay-after-treatment limit, minor units"})
    currency = ma.fields.String()
    eligible = ma.fields.Boolean(metadata={"description": "score >= threshold"})
    threshold = ma.fields.Integer()
    band_version = ma.fields.Integer()


class CreditSchema(StandingSchema):
    history = ma.fields.List(
        ma.fields.Nested(HistoryEntrySchema),
        metadata={"description": "The latest 100 events, newest first"},
    )


class BandInputSchema(StrictSchema):
    min = ma.fields.Integer(required=True, strict=True)
    max = ma.fields.Integer(
        required=True, strict=True, allow_none=True, metadata={"description": "null: no upper end"}
    )
    limit = ma.fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=0),
        metadata={"description": "minor units"},
    )


class BandsInputSchema(StrictSchema):
    threshold = ma.fields.Integer(required=True, strict=True)
    currency = ma.fields.String(validate=validate.Length(equal=3))
    bands = ma.fields.List(
        ma.fields.Nested(BandInputSchema), required=True, validate=validate.Length(min=1, max=20)
    )


class BandSchema(ma.Schema):
    label = ma.fields.String()
    min = ma.fields.Integer()
    max = ma.fields.Integer(allow_none=True)
    limit = ma.fields.Integer()


class BandsVersionSchema(ma.Schema):
    version = ma.fields.Integer()
    threshold = ma.fields.Integer()
    currency = ma.fields.String()
    bands = ma.fields.List(ma.fields.Nested(BandSchema))
    created_by = ma.fields.String()
    created_at = ma.fields.AwareDateTime(allow_none=True)


class BandsSchema(BandsVersionSchema):
    history = ma.fields.List(
        ma.fields.Nested(BandsVersionSchema), metadata={"description": "Earlier versions"}
    )
