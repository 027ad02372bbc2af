"""Requests and responses of the payment rail."""

import marshmallow as ma
from marshmallow import validate

from core.i18n import _l
from core.schemas import CurrentSetting, Name, StrictSchema
from payments.reasons import failure_reason


class SaveCardSchema(StrictSchema):
    payment_method = ma.fields.String(
        required=True,
        validate=validate.Regexp(
            r"^pm_[A-Za-z0-9_]{1,200}$", error=_l("Not a Stripe PaymentMethod id.")
        ),
        metadata={"description": "A PaymentMethod collected by Stripe.js in the app (pm_...)."},
    )
    consent_off_session = ma.fields.Boolean(
        required=True,
        validate=validate.Equal(True, error=_l("Explicit consent is required to save a card.")),
        metadata={"description": "The citizen agrees to later charges while not in the app."},
    )
    consent_text_version = ma.fields.String(
        required=True,
        validate=CurrentSetting(
            "OFF_SESSION_CONSENT_VERSION",
            error=_l("Consent must be given to the current text (version %(current)s)."),
        ),
        metadata={"description": "Version of the consent text shown to the citizen."},
    )


class SavedCardSchema(ma.Schema):
    id = ma.fields.String()
    brand = ma.fields.String(allow_none=True)
    last4 = ma.fields.String(allow_none=True)
    consent_version = ma.fields.String()
    consented_at = ma.fields.AwareDateTime()
    created_at = ma.fields.AwareDateTime()


class RefundSchema(ma.Schema):
    id = ma.fields.String()
    amount = ma.fields.Integer()
    reason = ma.fields.String()
    status = ma.fields.String()
    created_at = ma.fields.AwareDateTime()
    updated_at = ma.fields.AwareDateTime()


def _failure_message(payment: object) -> str | None:
    if ma.utils.get_value(payment, "status") != "failed":
        return None
    return str(failure_reason(ma.utils.get_value(payment, "failure_code")))


class PaymentSchema(ma.Schema):
    id = ma.fields.String()
    amount = ma.fields.Integer(metadata={"description": "Minor units of the currency."})
    currency = ma.fields.String()
    purpose = ma.fields.String()
    reference = ma.fields.String()
    status = ma.fields.String(
        metadata={
            "description": "pending, requires_action, processing, succeeded, failed, canceled"
        }
    )
    amount_refunded = ma.fields.Integer()
    off_session = ma.fields.Boolean()
    failure_code = ma.fields.String(allow_none=True)
    failure_message = ma.fields.Function(
        _failure_message,
        allow_none=True,
        metadata={"description": "Why it failed, in the reader's language."},
    )
    created_at = ma.fields.AwareDateTime()
    updated_at = ma.fields.AwareDateTime()


class PaymentDetailSchema(PaymentSchema):
    refunds = ma.fields.List(ma.fields.Nested(RefundSchema))


class RefundRequestSchema(StrictSchema):
    amount = ma.fields.Integer(
        strict=True,
        validate=validate.Range(min=1),
        metadata={"description": "Minor units; omit to refund all that is left."},
    )
    reason = Name(required=True, max_length=255)


class StripeEventSchema(ma.Schema):
    """What Stripe posts to the webhook (documents the body; the view verifies it raw)."""

    class Meta:
        unknown = ma.INCLUDE

    id = ma.fields.String(required=True, metadata={"description": "The event id (evt_...)."})
    type = ma.fields.String(required=True, metadata={"example": "payment_intent.succeeded"})
    created = ma.fields.Integer()
    data = ma.fields.Dict(required=True, metadata={"description": "{object: the Stripe object}"})


class WebhookReceiptSchema(ma.Schema):
    received = ma.fields.Boolean()
    duplicate = ma.fields.Boolean(metadata={"description": "This event id was seen before."})
