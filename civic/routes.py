"""``/api/v1/civic``: the credit score, the catalog, applications, the officials' queue and
certificates. Thin: parse, call one service function, return."""

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from civic.schemas import (
    BandsInputSchema,
    BandsSchema,
    CreditEventCreateSchema,
    CreditSchema,
    ScoreEventSchema,
)
from civic.service import credit
from core.auth.access import current_principal, requires
from core.idempotency import idempotent

credit_blp = Blueprint(
    "civic_credit",
    __name__,
    url_prefix="/api/v1/civic/credit",
    description="The city credit score: events, bands, a citizen's standing.",
)


@credit_blp.route("")
class MyCredit(MethodView):
    @requires("citizen")
    @credit_blp.response(200, CreditSchema)
    def get(self) -> Any:
        """My score, band and limit, and the history with reasons"""
        return credit.my_credit(current_principal().id)


@credit_blp.route("/events")
class CreditEvents(MethodView):
    @requires("admin", "official")
    @idempotent
    @credit_blp.arguments(CreditEventCreateSchema)
    @credit_blp.response(201, ScoreEventSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Post a score event for a citizen (audited)"""
        return credit.post_event(
            data["user_id"],
            data["delta"],
            data["reason"],
            data["agency"],
            evidence=data.get("evidence"),
            actor=current_principal(),
        )


@credit_blp.route("/bands")
class CreditBands(MethodView):
    @requires("admin")
    @credit_blp.response(200, BandsSchema)
    def get(self) -> Any:
        """The bands in force (threshold, limit per band) and their earlier versions"""
        return credit.bands_view()

    @requires("admin")
    @credit_blp.arguments(BandsInputSchema)
    @credit_blp.response(200, BandsSchema)
    def put(self, data: dict[str, Any]) -> Any:
        """Put a new version of the bands in force (audited; the past is never rewritten)"""
        return credit.save_bands(
            data["threshold"], data["bands"], data.get("currency"), current_principal()
        )
