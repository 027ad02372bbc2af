"""``/api/v1/payments``: saved cards, payment history, refunds, Stripe's webhook."""

from typing import Any

from flask import request
from flask.views import MethodView

from core.api import Blueprint
from core.auth.access import PUBLIC, current_principal, requires
from core.idempotency import HEADER, idempotent
from core.pagination import SelectPage
from payments import service
from payments.schemas import (
    PaymentDetailSchema,
    PaymentSchema,
    RefundRequestSchema,
    RefundSchema,
    SaveCardSchema,
    SavedCardSchema,
    StripeEventSchema,
    WebhookReceiptSchema,
)

blp = Blueprint(
    "payments", __name__, url_prefix="/api/v1/payments", description="The payment rail."
)


@blp.route("/methods")
class SavedCards(MethodView):
    @requires("citizen")
    @blp.response(200, SavedCardSchema(many=True))
    def get(self) -> Any:
        """My saved cards"""
        return service.list_cards(current_principal().id)

    @requires("citizen")
    @idempotent
    @blp.arguments(SaveCardSchema)
    @blp.response(201, SavedCardSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Save a card for later charges (SetupIntent, off-session), with my explicit consent"""
        return service.save_card(
            current_principal().id, data["payment_method"], data["consent_text_version"]
        )


@blp.route("/methods/<card_id>")
class SavedCardItem(MethodView):
    @requires("citizen")
    @blp.response(204)
    def delete(self, card_id: str) -> None:
        """Remove a saved card"""
        service.remove_card(current_principal().id, card_id)


@blp.route("")
class Payments(MethodView):
    @requires("citizen")
    @blp.response(200, PaymentSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self) -> Any:
        """My payments, newest first (paged)"""
        return service.history(current_principal().id)


@blp.route("/<payment_id>")
class PaymentItem(MethodView):
    @requires("citizen", "admin")
    @blp.response(200, PaymentDetailSchema)
    def get(self, payment_id: str) -> Any:
        """One payment with its refunds (a citizen sees only their own)"""
        return service.payment_detail(current_principal(), payment_id)


@blp.route("/<payment_id>/refunds")
class Refunds(MethodView):
    @requires("admin")
    @idempotent
    @blp.arguments(RefundRequestSchema)
    @blp.response(201, RefundSchema)
    def post(self, data: dict[str, Any], payment_id: str) -> Any:
        """Refund a payment in full or in part, with a reason"""
        return service.refund(
            payment_id,
            data.get("amount"),
            data["reason"],
            actor=current_principal(),
            idempotency_key=request.headers.get(HEADER),
        )


STRIPE_SIGNATURE = {
    "in": "header",
    "name": "Stripe-Signature",
    "required": True,
    "schema": {"type": "string"},
    "description": "t=<unix time>,v1=<HMAC-SHA256 of the raw body with the webhook secret>",
}


@blp.route("/webhooks/stripe")
class StripeWebhook(MethodView):
    @requires(PUBLIC)  # authenticated by the Stripe-Signature over the raw body
    @blp.doc(
        parameters=[STRIPE_SIGNATURE],
        requestBody={
            "required": True,
            "content": {"application/json": {"schema": StripeEventSchema}},
        },
    )
    @blp.response(200, WebhookReceiptSchema)
    def post(self) -> Any:
        """Stripe's webhook: verified, stored once, applied by re-fetching the object"""
        new = service.receive_webhook(
            request.get_data(cache=False), request.headers.get("Stripe-Signature", "")
        )
        return {"received": True, "duplicate": not new}
