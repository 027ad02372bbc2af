"""Requests and responses of accounts, tokens and organisations."""

import marshmallow as ma
from marshmallow import validate

from core.auth.models import ORG_KINDS
from core.i18n import LOCALES, _l
from core.schemas import Name, StrictSchema

PASSWORD = validate.Length(min=10, max=128)


class RegisterSchema(StrictSchema):
    email = ma.fields.Email(required=True, validate=validate.Length(max=254))
    password = ma.fields.String(required=True, load_only=True, validate=PASSWORD)
    name = Name(required=True, max_length=200)
    phone = ma.fields.String(
        validate=validate.Regexp(r"^\+?[0-9 ()-]{6,31}$", error=_l("Not a phone number."))
    )
    locale = ma.fields.String(
        validate=validate.OneOf(LOCALES),
        metadata={"description": "Language of messages: ko, en or zh (default: Accept-Language)."},
    )


class LoginSchema(StrictSchema):
    email = ma.fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = ma.fields.String(required=True, load_only=True, validate=validate.Length(max=128))


class RefreshSchema(StrictSchema):
    refresh_token = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))


class TokenPairSchema(ma.Schema):
    access_token = ma.fields.String()
    refresh_token = ma.fields.String()
    token_type = ma.fields.String()
    expires_in = ma.fields.Integer(metadata={"description": "Access token lifetime in seconds."})


class UserSchema(ma.Schema):
    id = ma.fields.String()
    email = ma.fields.String()
    name = ma.fields.String()
    phone = ma.fields.String(allow_none=True)
    role = ma.fields.String()
    department = ma.fields.String(attribute="department_code", allow_none=True)
    locale = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()


class MeSchema(ma.Schema):
    kind = ma.fields.String(metadata={"description": "user or organisation"})
    id = ma.fields.String()
    name = ma.fields.String()
    role = ma.fields.String(metadata={"description": "The user's role or the organisation kind"})
    email = ma.fields.String(allow_none=True)
    department = ma.fields.String(allow_none=True)
    organisation_kind = ma.fields.String(allow_none=True)
    locale = ma.fields.String(
        allow_none=True,
        metadata={"description": "The user's saved language (ko, en, zh); null: Accept-Language"},
    )


class MeUpdateSchema(StrictSchema):
    locale = ma.fields.String(
        required=True,
        allow_none=True,
        validate=validate.OneOf(LOCALES),
        metadata={"description": "ko, en or zh; null to follow Accept-Language again."},
    )


class OrganisationCreateSchema(StrictSchema):
    name = Name(required=True, max_length=200)
    kind = ma.fields.String(required=True, validate=validate.OneOf(ORG_KINDS))


class OrganisationSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    kind = ma.fields.String()
    created_at = ma.fields.AwareDateTime()


class ApiKeyCreateSchema(StrictSchema):
    label = Name(max_length=100)


class ApiKeySchema(ma.Schema):
    id = ma.fields.String()
    prefix = ma.fields.String()
    label = ma.fields.String(allow_none=True)
    created_at = ma.fields.AwareDateTime()
    revoked_at = ma.fields.AwareDateTime(allow_none=True)


class IssuedApiKeySchema(ma.Schema):
    key = ma.fields.Nested(ApiKeySchema)
    api_key = ma.fields.String(
        attribute="secret", metadata={"description": "Shown once; store it now."}
    )
