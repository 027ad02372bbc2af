"""``/api/v1/health``, ``/fhir/R4`` and the ``/dashboard/health`` page. Thin: parse, call one
service function, return."""

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from flask import Blueprint as FlaskBlueprint
from flask import Request, Response, current_app, render_template, request, send_from_directory
from flask.views import MethodView
from marshmallow import Schema
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import MultiDict

from core import inputs
from core.api import Blueprint
from core.auth.access import PUBLIC, current_principal, requires
from core.idempotency import idempotent
from core.pagination import SelectPage
from health import fhir
from health.schemas import (
    BillQuerySchema,
    BillRefundCreateSchema,
    BillRefundSchema,
    BillSchema,
    ChargeCorrectionSchema,
    ChargesCreateSchema,
    ChargeVoidSchema,
    CheckinCodeSchema,
    CreditLineSchema,
    DashboardQuerySchema,
    DashboardSchema,
    FaceEnrolSchema,
    FaceSchema,
    JoinSchema,
    SettlementCreateSchema,
    SettlementSchema,
    TermsSchema,
    VisitCreateSchema,
    VisitQuerySchema,
    VisitSchema,
)
from health.service import checkin, dashboard, face, lines, settlements, visits

F = TypeVar("F", bound=Callable[..., Any])
PAGE_DIR = Path(__file__).resolve().parent / "static"
# Room for the multipart envelope around the photo itself.
_MULTIPART_OVERHEAD = 64 * 1024


class _MultipartParser(type(Blueprint.ARGUMENTS_PARSER)):  # type: ignore[misc]
    """The app's argument parser, plus ``form_and_files``: one multipart body holding a photo
    and form fields, parsed and documented as one schema."""

    __location_map__ = {
        **type(Blueprint.ARGUMENTS_PARSER).__location_map__,
        "form_and_files": "load_form_and_files",
    }

    def load_form_and_files(self, req: Request, schema: Schema) -> MultiDictProxy:
        inputs.refuse_bad_pairs(req.form.items(multi=True))
        data: MultiDict[str, Any] = MultiDict(req.form)
        data.update(req.files)
        return MultiDictProxy(data, schema)


class UploadBlueprint(Blueprint):
    ARGUMENTS_PARSER = _MultipartParser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "form_and_files": "multipart/form-data",
    }


blp = UploadBlueprint(
    "health",
    __name__,
    url_prefix="/api/v1/health",
    description="Pay after treatment: credit line, visits, charges, bills, face, settlements.",
)
fhir_blp = Blueprint(
    "fhir", __name__, url_prefix="/fhir/R4", description="FHIR R4 Invoice and ChargeItem."
)
page_bp = FlaskBlueprint("health_page", __name__, template_folder="templates")


def _view_page(view: Callable[[Any], Any]) -> type[SelectPage]:
    """A page of rows, each shown as its service view (a visit with its charges...)."""

    class ViewPage(SelectPage):
        @property
        def items(self) -> list[Any]:
            return [view(row) for row in super().items]

    return ViewPage


VisitPage = _view_page(visits.visit_view)
BillPage = _view_page(visits.bill_view)


def photo_upload(view: F) -> F:
    """Let this request's body reach ``FACE_MAX_UPLOAD_BYTES`` (413 beyond), not the app-wide
    ``MAX_CONTENT_LENGTH``. Place it above ``@idempotent`` and the argument parsers."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        request.max_content_length = (
            current_app.config["FACE_MAX_UPLOAD_BYTES"] + _MULTIPART_OVERHEAD
        )
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _image(files: dict[str, Any]) -> bytes:
    return bytes(files["image"].read())


# --- credit line ---------------------------------------------------------------------------


@blp.route("/credit-line/terms")
class Terms(MethodView):
    @requires(PUBLIC)
    @blp.response(200, TermsSchema)
    def get(self) -> Any:
        """The current terms of pay-later (version and text)"""
        return lines.terms()


@blp.route("/credit-line")
class CreditLine(MethodView):
    @requires("citizen")
    @blp.response(200, CreditLineSchema)
    def get(self) -> Any:
        """My pay-later line: status, limit (from my score), used, available"""
        return lines.line_view(current_principal().id)

    @requires("citizen")
    @idempotent
    @blp.arguments(JoinSchema)
    @blp.response(201, CreditLineSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Join pay-later (score, saved card, enrolled face, accepted terms)"""
        return lines.join(current_principal().id, data["terms_version"])

    @requires("citizen")
    @blp.response(200, CreditLineSchema)
    def delete(self) -> Any:
        """Close my pay-later line (only when nothing is owed)"""
        return lines.close(current_principal().id)


@blp.route("/checkin-code")
class CheckinCode(MethodView):
    @requires("citizen")
    @blp.response(200, CheckinCodeSchema)
    def get(self) -> Any:
        """A short-lived, single-use check-in code to show at the hospital as a QR code"""
        return checkin.issue(current_principal().id)


# --- hospitals: visits, charges, bills --------------------------------------------------------


@blp.route("/visits")
class Visits(MethodView):
    @requires("hospital")
    @blp.arguments(VisitQuerySchema, location="query")
    @blp.response(200, VisitSchema(many=True))
    @blp.paginate(VisitPage)
    def get(self, query: dict[str, Any]) -> Any:
        """Our visits, newest first (paged), by status if asked"""
        return visits.visits_query(current_principal(), query.get("status"))

    @requires("hospital")
    @idempotent
    @blp.arguments(VisitCreateSchema)
    @blp.response(201, VisitSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Record a visit from the patient's check-in code: pay-later or not, and why"""
        return visits.create_visit(
            current_principal(),
            data["checkin_code"],
            data.get("department"),
            data.get("visited_at"),
        )


@blp.route("/visits/<visit_id>")
class VisitItem(MethodView):
    @requires("hospital")
    @blp.response(200, VisitSchema)
    def get(self, visit_id: str) -> Any:
        """One of our visits with its charges"""
        return visits.visit_detail(current_principal(), visit_id)


@blp.route("/visits/<visit_id>/charges")
class Charges(MethodView):
    @requires("hospital")
    @idempotent
    @blp.arguments(ChargesCreateSchema)
    @blp.response(201, VisitSchema)
    def post(self, data: dict[str, Any], visit_id: str) -> Any:
        """Post charges to an open pay-later visit (409 over the limit)"""
        return visits.post_charges(current_principal(), visit_id, data["items"])


@blp.route("/visits/<visit_id>/charges/<charge_id>")
class ChargeItem(MethodView):
    @requires("hospital")
    @blp.arguments(ChargeCorrectionSchema)
    @blp.response(200, VisitSchema)
    def patch(self, data: dict[str, Any], visit_id: str, charge_id: str) -> Any:
        """Correct a charge before settlement, with a reason (audited)"""
        reason = data.pop("reason")
        return visits.correct_charge(current_principal(), visit_id, charge_id, data, reason)


@blp.route("/visits/<visit_id>/charges/<charge_id>/void")
class ChargeVoid(MethodView):
    @requires("hospital")
    @blp.arguments(ChargeVoidSchema)
    @blp.response(200, VisitSchema)
    def post(self, data: dict[str, Any], visit_id: str, charge_id: str) -> Any:
        """Void a charge before settlement, with a reason (audited)"""
        return visits.void_charge(current_principal(), visit_id, charge_id, data["reason"])


@blp.route("/visits/<visit_id>/close")
class VisitClose(MethodView):
    @requires("hospital")
    @idempotent
    @blp.response(201, BillSchema)
    def post(self, visit_id: str) -> Any:
        """Close the visit and issue its bill; the settlement window starts now"""
        return visits.close_visit(current_principal(), visit_id)


@blp.route("/bills")
class Bills(MethodView):
    @requires("citizen")
    @blp.arguments(BillQuerySchema, location="query")
    @blp.response(200, BillSchema(many=True))
    @blp.paginate(BillPage)
    def get(self, query: dict[str, Any]) -> Any:
        """My bills with items, hospital, deadline and status (paged)"""
        return visits.bills_query(current_principal().id, query.get("status"))


@blp.route("/bills/<bill_id>")
class BillItem(MethodView):
    @requires("hospital", "citizen")
    @blp.response(200, BillSchema)
    def get(self, bill_id: str) -> Any:
        """One bill (the hospital's own, or the citizen's own)"""
        return visits.bill_detail(current_principal(), bill_id)


@blp.route("/bills/<bill_id>/refunds")
class BillRefunds(MethodView):
    @requires("hospital")
    @idempotent
    @blp.arguments(BillRefundCreateSchema)
    @blp.response(201, BillRefundSchema)
    def post(self, data: dict[str, Any], bill_id: str) -> Any:
        """Refund (part of) a settled bill through payments (audited)"""
        return visits.refund_bill(current_principal(), bill_id, data.get("amount"), data["reason"])


# --- face and settlements -----------------------------------------------------------------


@blp.route("/face")
class Face(MethodView):
    @requires("citizen")
    @blp.response(200, FaceSchema)
    def get(self) -> Any:
        """Whether my face is enrolled, since when, and whether face payment is locked"""
        return face.status(current_principal().id)

    @requires("citizen")
    @photo_upload
    @blp.arguments(FaceEnrolSchema, location="form_and_files")
    @blp.response(200, FaceSchema)
    def put(self, form: dict[str, Any]) -> Any:
        """Enrol my face with my explicit consent (multipart: image, consent=true)"""
        return face.enrol(current_principal().id, _image(form), form["consent"])

    @requires("citizen")
    @blp.response(204)
    def delete(self) -> None:
        """Erase my face template: face payment closes until I enrol again"""
        face.erase(current_principal().id)


@blp.route("/settlements")
class Settlements(MethodView):
    @requires("citizen")
    @photo_upload
    @idempotent
    @blp.arguments(SettlementCreateSchema, location="form_and_files")
    @blp.response(201, SettlementSchema)
    @blp.alt_response(202, schema=SettlementSchema, description="Waiting: 3-D Secure or Stripe")
    @blp.alt_response(402, description="card_declined: the bills stay open")
    @blp.alt_response(403, description="face_mismatch, with attempts_left")
    @blp.alt_response(409, description="Nothing to settle, or already being paid")
    @blp.alt_response(413, description="image_too_large")
    @blp.alt_response(423, description="face_locked, with unlocks_at and Retry-After")
    def post(self, form: dict[str, Any]) -> Any:
        """Pay my bills at once, confirmed by my face (multipart: image, bill_ids?)"""
        raw = form.get("bill_ids") or ""
        bill_ids = [part.strip() for part in raw.split(",") if part.strip()] or None
        return settlements.settle_by_face(current_principal().id, _image(form), bill_ids)


@blp.route("/settlements/<settlement_id>")
class SettlementItem(MethodView):
    @requires("citizen")
    @blp.response(200, SettlementSchema)
    def get(self, settlement_id: str) -> Any:
        """One of my settlements (poll it after 3-D Secure)"""
        return settlements.settlement_detail(current_principal().id, settlement_id)


# --- the health commission ------------------------------------------------------------------


@blp.route("/dashboard")
class Dashboard(MethodView):
    @requires("health_commission")
    @blp.arguments(DashboardQuerySchema, location="query")
    @blp.response(200, DashboardSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """A day's figures in the city's timezone, per hospital, and the last 30 days"""
        return dashboard.figures(query.get("date"))


@page_bp.get("/dashboard/health")
@requires(PUBLIC)
def dashboard_page() -> Response:
    """The wall-screen page (it signs in itself; its data comes from /dashboard)."""
    response = Response(render_template("health/dashboard.html"))
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@page_bp.get("/dashboard/health/assets/<path:filename>")
@requires(PUBLIC)
def dashboard_asset(filename: str) -> Response:
    """The page's script, style and vendored chart library (no CDN)."""
    return send_from_directory(PAGE_DIR, filename, max_age=3600)


# --- FHIR R4 --------------------------------------------------------------------------------


@fhir_blp.route("/Invoice/<bill_id>")
class FhirInvoice(MethodView):
    @requires("hospital")
    @fhir_blp.response(200, content_type=fhir.CONTENT_TYPE)
    def get(self, bill_id: str) -> Response:
        """A bill as a FHIR R4 Invoice (issued, balanced or cancelled)"""
        return fhir.respond(fhir.invoice(visits.fhir_bill(current_principal(), bill_id)))


@fhir_blp.route("/ChargeItem/<charge_id>")
class FhirChargeItem(MethodView):
    @requires("hospital")
    @fhir_blp.response(200, content_type=fhir.CONTENT_TYPE)
    def get(self, charge_id: str) -> Response:
        """A charge as a FHIR R4 ChargeItem"""
        return fhir.respond(fhir.charge_item(visits.fhir_charge(current_principal(), charge_id)))
