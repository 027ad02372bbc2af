"""Requests and responses of civic: the credit score, the catalog, applications, certificates."""

import marshmallow as ma
from marshmallow import validate

from civic.models import APPLICATION_STATUSES
from civic.service.catalog import DATATYPES, DOCUMENT_TYPES
from core.i18n import LOCALES, _l
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


# --- departments and the catalog -----------------------------------------------------------

LANG = validate.OneOf(LOCALES)
_CATEGORY = validate.Regexp(
    r"^[a-z0-9][a-z0-9-]{0,63}$", error=_l("Lower-case letters, digits, '-'.")
)


class LocalisedNameSchema(StrictSchema):
    ko = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    en = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    zh = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))


class LocalisedTextSchema(StrictSchema):
    ko = ma.fields.String(required=True, validate=validate.Length(min=1, max=4000))
    en = ma.fields.String(required=True, validate=validate.Length(min=1, max=4000))
    zh = ma.fields.String(required=True, validate=validate.Length(min=1, max=4000))


class DepartmentCreateSchema(StrictSchema):
    code = ma.fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[A-Z0-9][A-Z0-9-]{1,31}$", error=_l("Upper-case letters, digits and '-'.")
        ),
    )
    name = ma.fields.Nested(LocalisedNameSchema, required=True)


class DepartmentSchema(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    created_at = ma.fields.AwareDateTime()


class FeeSchema(StrictSchema):
    amount = ma.fields.Integer(
        required=True, strict=True, metadata={"description": "Minor units (₩5,000 is 5000)"}
    )
    currency = ma.fields.String(required=True, validate=validate.Length(equal=3))


class ListValueSchema(StrictSchema):
    key = ma.fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = ma.fields.Nested(LocalisedNameSchema, required=True)


class FormFieldSchema(StrictSchema):
    code = ma.fields.String(required=True, validate=validate.Length(min=1, max=32))
    label = ma.fields.Nested(LocalisedNameSchema, required=True)
    datatype = ma.fields.String(required=True, validate=validate.OneOf(DATATYPES))
    required = ma.fields.Boolean(load_default=False)
    values = ma.fields.List(
        ma.fields.Nested(ListValueSchema), validate=validate.Length(min=1, max=100)
    )
    min = ma.fields.Float(allow_nan=False)
    max = ma.fields.Float(allow_nan=False)
    pattern = ma.fields.String(validate=validate.Length(min=1, max=200))
    max_length = ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=4000))


class DocumentSpecSchema(StrictSchema):
    code = ma.fields.String(required=True, validate=validate.Length(min=1, max=32))
    label = ma.fields.Nested(LocalisedNameSchema, required=True)
    required = ma.fields.Boolean(load_default=True)
    types = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(DOCUMENT_TYPES)),
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": "MIME types, judged by the file's content"},
    )
    max_bytes = ma.fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


def _content_fields(required: bool) -> dict[str, ma.fields.Field]:
    """A service's content; everything required on creation, anything on a change."""
    return {
        "category": ma.fields.String(required=required, validate=_CATEGORY),
        "department": ma.fields.String(required=required, validate=validate.Length(min=1, max=32)),
        "name": ma.fields.Nested(LocalisedNameSchema, required=required),
        "description": ma.fields.Nested(LocalisedTextSchema, required=required),
        "keywords": ma.fields.List(
            ma.fields.String(validate=validate.Length(min=1, max=50)),
            validate=validate.Length(max=30),
        ),
        "fee": ma.fields.Nested(FeeSchema, allow_none=True),
        "processing_days": ma.fields.Integer(
            required=required, strict=True, validate=validate.Range(min=1, max=365)
        ),
        "documents": ma.fields.List(
            ma.fields.Nested(DocumentSpecSchema), validate=validate.Length(max=20)
        ),
        "fields": ma.fields.List(
            ma.fields.Nested(FormFieldSchema),
            validate=validate.Length(max=50),
            metadata={"description": "The form, in order"},
        ),
        "open311": ma.fields.Boolean(metadata={"description": "Listed through Open311"}),
    }


ServiceCreateSchema = StrictSchema.from_dict(
    {
        "code": ma.fields.String(
            required=True,
            validate=validate.Regexp(
                r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$", error=_l("Letters, digits, '_' and '-'.")
            ),
        ),
        **_content_fields(required=True),
    },
    name="ServiceCreate",
)
ServiceChangeSchema = StrictSchema.from_dict(_content_fields(required=False), name="ServiceChange")


class ServiceDefinitionSchema(ma.Schema):
    code = ma.fields.String()
    status = ma.fields.String(metadata={"description": "draft, published or retired"})
    version = ma.fields.Integer(metadata={"description": "The version shown"})
    latest_version = ma.fields.Integer()
    published_version = ma.fields.Integer(allow_none=True)
    category = ma.fields.String()
    department = ma.fields.String()
    name = ma.fields.Dict()
    description = ma.fields.Dict()
    keywords = ma.fields.List(ma.fields.String())
    fee = ma.fields.Nested(FeeSchema, allow_none=True)
    processing_days = ma.fields.Integer()
    documents = ma.fields.List(ma.fields.Dict())
    form = ma.fields.List(ma.fields.Dict(), attribute="fields", data_key="fields")
    open311 = ma.fields.Boolean()


class NamedDepartmentSchema(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()


class ServiceSchema(ma.Schema):
    code = ma.fields.String()
    version = ma.fields.Integer()
    lang = ma.fields.String()
    category = ma.fields.String()
    department = ma.fields.Nested(NamedDepartmentSchema)
    name = ma.fields.String()
    description = ma.fields.String()
    keywords = ma.fields.List(ma.fields.String())
    fee = ma.fields.Nested(FeeSchema, allow_none=True)
    processing_days = ma.fields.Integer()
    documents = ma.fields.List(ma.fields.Dict())
    form = ma.fields.List(ma.fields.Dict(), attribute="fields", data_key="fields")
    open311 = ma.fields.Boolean()
    published_at = ma.fields.AwareDateTime(allow_none=True)


class ServiceSearchSchema(StrictSchema):
    q = ma.fields.String(
        validate=validate.Length(max=100),
        metadata={"description": "Words to find (a part of a word is enough), any language"},
    )
    category = ma.fields.String(validate=validate.Length(max=64))
    lang = ma.fields.String(validate=LANG, metadata={"description": "ko, en or zh"})


class LangSchema(StrictSchema):
    lang = ma.fields.String(validate=LANG, metadata={"description": "ko, en or zh"})


# --- applications --------------------------------------------------------------------------

_PAYMENT_METHOD = validate.Regexp(
    r"^pm_[A-Za-z0-9_]{1,200}$", error=_l("Not a Stripe PaymentMethod id.")
)
_NOTE = validate.Length(min=1, max=2000)


class SubmissionFormSchema(StrictSchema):
    service = ma.fields.String(
        required=True, validate=validate.Length(min=1, max=32), metadata={"description": "code"}
    )
    answers = ma.fields.String(
        metadata={"description": "A JSON object: field code to value (multipart text part)"}
    )
    payment_method = ma.fields.String(
        validate=_PAYMENT_METHOD,
        metadata={"description": "Pay with this PaymentMethod instead of the saved card"},
    )


class AnswersFormSchema(StrictSchema):
    answers = ma.fields.String(metadata={"description": "A JSON object (merged onto earlier)"})
    note = ma.fields.String(validate=_NOTE, metadata={"description": "A reply to the official"})


class PaySchema(StrictSchema):
    payment_method = ma.fields.String(validate=_PAYMENT_METHOD)


class NoteSchema(StrictSchema):
    note = ma.fields.String(required=True, validate=_NOTE)


class OptionalNoteSchema(StrictSchema):
    note = ma.fields.String(validate=_NOTE)


class ReasonSchema(StrictSchema):
    reason = ma.fields.String(required=True, validate=_NOTE)


class QueueQuerySchema(StrictSchema):
    status = ma.fields.String(validate=validate.OneOf(APPLICATION_STATUSES))
    overdue = ma.fields.Boolean(
        metadata={"description": "Only past (true) or within (false) the deadline"}
    )
    lang = ma.fields.String(validate=LANG)


class ServiceRefSchema(ma.Schema):
    code = ma.fields.String()
    version = ma.fields.Integer()
    name = ma.fields.String()


class ApplicationSummarySchema(ma.Schema):
    id = ma.fields.String()
    service = ma.fields.Nested(ServiceRefSchema)
    department = ma.fields.String()
    status = ma.fields.String()
    submitted_at = ma.fields.AwareDateTime(allow_none=True)
    deadline_at = ma.fields.AwareDateTime(allow_none=True)
    overdue = ma.fields.Boolean()
    created_at = ma.fields.AwareDateTime()
    updated_at = ma.fields.AwareDateTime()


class ApplicationFeeSchema(ma.Schema):
    amount = ma.fields.Integer()
    currency = ma.fields.String()
    payment_status = ma.fields.String(
        metadata={
            "description": "unpaid, in_progress, requires_action, failed, succeeded, "
            "refund_pending, refunded"
        }
    )
    attempts = ma.fields.Integer()
    failure = ma.fields.String(allow_none=True)
    payment_id = ma.fields.String(allow_none=True)


class DocumentSchema(ma.Schema):
    code = ma.fields.String()
    content_type = ma.fields.String()
    size = ma.fields.Integer()
    filename = ma.fields.String(allow_none=True)
    uploaded_at = ma.fields.AwareDateTime()


class TimelineEntrySchema(ma.Schema):
    from_status = ma.fields.String(allow_none=True)
    to_status = ma.fields.String()
    by = ma.fields.String(metadata={"description": "citizen, official, system..."})
    note = ma.fields.String(allow_none=True)
    at = ma.fields.AwareDateTime()


class ApplicantSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()


class ApplicationSchema(ApplicationSummarySchema):
    status_note = ma.fields.String(allow_none=True)
    answers = ma.fields.Dict()
    applicant = ma.fields.Nested(ApplicantSchema, allow_none=True)
    fee = ma.fields.Nested(ApplicationFeeSchema, allow_none=True)
    documents = ma.fields.List(ma.fields.Nested(DocumentSchema))
    timeline = ma.fields.List(ma.fields.Nested(TimelineEntrySchema))
    decided_at = ma.fields.AwareDateTime(allow_none=True)
    expires_at = ma.fields.AwareDateTime(allow_none=True)
    certificate = ma.fields.String(allow_none=True, metadata={"description": "Its code"})
    client_secret = ma.fields.String(
        allow_none=True,
        metadata={"description": "Only with 202: finish 3-D Secure in the app with Stripe's SDK"},
    )


# --- certificates --------------------------------------------------------------------------


class CertificateSchema(ma.Schema):
    code = ma.fields.String()
    jws = ma.fields.String(metadata={"description": "Compact JWS, EdDSA (Ed25519), kid in header"})
    claims = ma.fields.Dict()


class VerificationSchema(ma.Schema):
    code = ma.fields.String()
    genuine = ma.fields.Boolean(metadata={"description": "The signature verifies"})
    revoked = ma.fields.Boolean()
    revoked_at = ma.fields.AwareDateTime(allow_none=True)
    claims = ma.fields.Dict(allow_none=True, metadata={"description": "What it states"})


class JwkSetSchema(ma.Schema):
    keys = ma.fields.List(ma.fields.Dict())
