"""Inbox responses and filters."""

import marshmallow as ma

from core.schemas import StrictSchema


class NotificationSchema(ma.Schema):
    id = ma.fields.String()
    kind = ma.fields.String()
    title = ma.fields.String()
    body = ma.fields.String()
    data = ma.fields.Dict(allow_none=True)
    created_at = ma.fields.AwareDateTime()
    read_at = ma.fields.AwareDateTime(allow_none=True)
    read = ma.fields.Function(lambda n: n.read_at is not None)


class InboxQuerySchema(StrictSchema):
    unread = ma.fields.Boolean(load_default=False, metadata={"description": "Only unread ones"})


class MarkedSchema(ma.Schema):
    marked = ma.fields.Integer()
