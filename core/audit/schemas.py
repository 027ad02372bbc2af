"""Audit responses and filters."""

import marshmallow as ma
from marshmallow import validate

from core.schemas import AwareDateTime, StrictSchema


class AuditQuerySchema(StrictSchema):
    actor = ma.fields.String(
        validate=validate.Length(max=80),
        metadata={"description": "e.g. user:<id>, organisation:<id> or cli"},
    )
    object_type = ma.fields.String(validate=validate.Length(max=64))
    object_id = ma.fields.String(validate=validate.Length(max=64))
    since = AwareDateTime(metadata={"description": "Inclusive, ISO 8601 with offset"})
    until = AwareDateTime(metadata={"description": "Exclusive, ISO 8601 with offset"})


class AuditEntrySchema(ma.Schema):
    id = ma.fields.String()
    at = ma.fields.AwareDateTime()
    actor = ma.fields.String()
    actor_role = ma.fields.String()
    action = ma.fields.String()
    object_type = ma.fields.String()
    object_id = ma.fields.String()
    before = ma.fields.Dict(allow_none=True)
    after = ma.fields.Dict(allow_none=True)
    request_id = ma.fields.String(allow_none=True)
