"""``/api/v1/civic``: the credit score, the catalog, applications, the officials' queue and
certificates. Thin: parse, call one service function, return."""

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, request, send_file
from flask.views import MethodView
from flask_babel import get_locale

from civic.schemas import (
    AnswersFormSchema,
    ApplicationSchema,
    ApplicationSummarySchema,
    BandsInputSchema,
    BandsSchema,
    CertificateSchema,
    CreditEventCreateSchema,
    CreditSchema,
    DepartmentCreateSchema,
    DepartmentSchema,
    JwkSetSchema,
    LangSchema,
    NoteSchema,
    OptionalNoteSchema,
    PaySchema,
    QueueQuerySchema,
    ReasonSchema,
    ScoreEventSchema,
    ServiceChangeSchema,
    ServiceCreateSchema,
    ServiceDefinitionSchema,
    ServiceSchema,
    ServiceSearchSchema,
    SubmissionFormSchema,
    VerificationSchema,
)
from civic.service import applications, catalog, certificates, credit, documents, workflow
from civic.service.documents import Upload
from core.api import Blueprint
from core.auth.access import PUBLIC, current_principal, requires
from core.idempotency import idempotent

F = TypeVar("F", bound=Callable[..., Any])

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


catalog_blp = Blueprint(
    "civic_catalog",
    __name__,
    url_prefix="/api/v1/civic",
    description="Departments and the catalog of government services.",
)


def _lang(args: dict[str, Any]) -> str:
    """The language asked for, else the request's (Accept-Language, else the city's default)."""
    return str(args.get("lang") or get_locale())


@catalog_blp.route("/departments")
class Departments(MethodView):
    @requires("admin")
    @catalog_blp.response(200, DepartmentSchema(many=True))
    def get(self) -> Any:
        """The city's departments"""
        return catalog.list_departments()

    @requires("admin")
    @catalog_blp.arguments(DepartmentCreateSchema)
    @catalog_blp.response(201, DepartmentSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Add a department (audited)"""
        return catalog.create_department(data["code"], data["name"], current_principal())


@catalog_blp.route("/services")
class Services(MethodView):
    @requires(PUBLIC)
    @catalog_blp.arguments(ServiceSearchSchema, location="query")
    @catalog_blp.response(200, ServiceSchema(many=True))
    @catalog_blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> Any:
        """Find published services by words in any language, by category (paged)"""
        items, total = catalog.search(
            args.get("q"),
            args.get("category"),
            _lang(args),
            pagination_parameters.page,
            pagination_parameters.page_size,
        )
        pagination_parameters.item_count = total
        return items

    @requires("admin")
    @catalog_blp.arguments(ServiceCreateSchema)
    @catalog_blp.response(201, ServiceDefinitionSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a service as a draft (audited)"""
        code = data.pop("code")
        return catalog.create_service(code, data, current_principal())


@catalog_blp.route("/services/<code>")
class ServiceItem(MethodView):
    @requires(PUBLIC)
    @catalog_blp.arguments(LangSchema, location="query")
    @catalog_blp.response(200, ServiceSchema)
    def get(self, args: dict[str, Any], code: str) -> Any:
        """A published service's current version, in one language"""
        return catalog.show(code, _lang(args))

    @requires("admin")
    @catalog_blp.arguments(ServiceChangeSchema)
    @catalog_blp.response(200, ServiceDefinitionSchema)
    def patch(self, data: dict[str, Any], code: str) -> Any:
        """Change a service (a published one gets a new draft version; audited)"""
        return catalog.update_service(code, data, current_principal())


@catalog_blp.route("/services/<code>/publish")
class PublishService(MethodView):
    @requires("admin")
    @catalog_blp.response(200, ServiceDefinitionSchema)
    def post(self, code: str) -> Any:
        """Publish the latest version (audited)"""
        return catalog.publish_service(code, current_principal())


@catalog_blp.route("/services/<code>/retire")
class RetireService(MethodView):
    @requires("admin")
    @catalog_blp.response(200, ServiceDefinitionSchema)
    def post(self, code: str) -> Any:
        """Take a service out of the catalog (audited)"""
        return catalog.retire_service(code, current_principal())


applications_blp = Blueprint(
    "civic_applications",
    __name__,
    url_prefix="/api/v1/civic",
    description="Applications: submission with documents and the fee, the officials' queue.",
)

MULTIPART = "multipart/form-data"


def accepts_uploads(view: F) -> F:
    """Let this view's request body be as large as ``CIVIC_UPLOAD_MAX_BYTES`` (documents),
    above the API-wide ``MAX_CONTENT_LENGTH``. Place it right under ``@requires``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        request.max_content_length = current_app.config["CIVIC_UPLOAD_MAX_BYTES"] + 65536
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _uploads() -> dict[str, Upload]:
    """The request's file parts: one per document code (the part's name)."""
    return {code: Upload(code, part.filename, part.read()) for code, part in request.files.items()}


def _answered(outcome: applications.Outcome) -> Any:
    """201 with the application; 202 with the client secret when the app must finish 3-D
    Secure with Stripe's SDK (the webhook then confirms the payment)."""
    view = applications.view(outcome.application, str(get_locale()), outcome.client_secret)
    return (view, 202) if outcome.client_secret else view


@applications_blp.route("/applications")
class Applications(MethodView):
    @requires("citizen")
    @applications_blp.arguments(LangSchema, location="query")
    @applications_blp.response(200, ApplicationSummarySchema(many=True))
    @applications_blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> Any:
        """My applications, newest first (paged)"""
        items, total = applications.mine(
            current_principal(),
            _lang(args),
            pagination_parameters.page,
            pagination_parameters.page_size,
        )
        pagination_parameters.item_count = total
        return items

    @requires("citizen")
    @accepts_uploads
    @idempotent
    @applications_blp.arguments(SubmissionFormSchema, location="form", content_type=MULTIPART)
    @applications_blp.response(201, ApplicationSchema)
    @applications_blp.alt_response(202, schema=ApplicationSchema, description="3-D Secure")
    def post(self, form: dict[str, Any]) -> Any:
        """Apply: answers (JSON), one file part per document code, and the fee"""
        outcome = applications.submit(
            current_principal(),
            form["service"],
            form.get("answers"),
            _uploads(),
            form.get("payment_method"),
        )
        return _answered(outcome)


@applications_blp.route("/applications/<application_id>")
class ApplicationItem(MethodView):
    @requires("citizen", "official")
    @applications_blp.arguments(LangSchema, location="query")
    @applications_blp.response(200, ApplicationSchema)
    def get(self, args: dict[str, Any], application_id: str) -> Any:
        """One application with its timeline (the applicant's, or the department's)"""
        return applications.detail(current_principal(), application_id, _lang(args))


@applications_blp.route("/applications/<application_id>/pay")
class PayApplication(MethodView):
    @requires("citizen")
    @idempotent
    @applications_blp.arguments(PaySchema)
    @applications_blp.response(201, ApplicationSchema)
    @applications_blp.alt_response(202, schema=ApplicationSchema, description="3-D Secure")
    def post(self, data: dict[str, Any], application_id: str) -> Any:
        """Pay the fee of an application waiting for it"""
        outcome = applications.pay(current_principal(), application_id, data.get("payment_method"))
        return _answered(outcome)


@applications_blp.route("/applications/<application_id>/answers")
class AnswerApplication(MethodView):
    @requires("citizen")
    @accepts_uploads
    @idempotent
    @applications_blp.arguments(AnswersFormSchema, location="form", content_type=MULTIPART)
    @applications_blp.response(200, ApplicationSchema)
    def post(self, form: dict[str, Any], application_id: str) -> Any:
        """Give the information asked for: answers, documents, a note"""
        application = applications.answer(
            current_principal(), application_id, form.get("answers"), _uploads(), form.get("note")
        )
        return applications.view(application, str(get_locale()))


@applications_blp.route("/applications/<application_id>/cancel")
class CancelApplication(MethodView):
    @requires("citizen")
    @idempotent
    @applications_blp.response(200, ApplicationSchema)
    def post(self, application_id: str) -> Any:
        """Cancel before review; a paid fee is refunded"""
        application = applications.cancel(current_principal(), application_id)
        return applications.view(application, str(get_locale()))


@applications_blp.route("/applications/<application_id>/documents/<code>")
class ApplicationDocumentFile(MethodView):
    @requires("citizen", "official")
    @applications_blp.response(200, description="The file")
    def get(self, application_id: str, code: str) -> Any:
        """Download a document (the applicant and the department's officials only)"""
        row = applications.document(current_principal(), application_id, code)
        response = send_file(
            documents.path_of(row.sha256),
            mimetype=row.content_type,
            as_attachment=True,
            download_name=f"{code}.{documents.EXTENSIONS.get(row.content_type, 'bin')}",
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@applications_blp.route("/applications/<application_id>/certificate")
class ApplicationCertificate(MethodView):
    @requires("citizen")
    @applications_blp.response(200, CertificateSchema)
    def get(self, application_id: str) -> Any:
        """The certificate of my approved application: code, JWS, claims"""
        return certificates.of_application(current_principal(), application_id)


@applications_blp.route("/queue")
class Queue(MethodView):
    @requires("official")
    @applications_blp.arguments(QueueQuerySchema, location="query")
    @applications_blp.response(200, ApplicationSummarySchema(many=True))
    @applications_blp.paginate()
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> Any:
        """My department's applications, oldest first (paged)"""
        items, total = workflow.queue(
            current_principal(),
            args.get("status"),
            args.get("overdue"),
            _lang(args),
            pagination_parameters.page,
            pagination_parameters.page_size,
        )
        pagination_parameters.item_count = total
        return items


@applications_blp.route("/applications/<application_id>/claim")
class ClaimApplication(MethodView):
    @requires("official")
    @applications_blp.response(200, ApplicationSchema)
    def post(self, application_id: str) -> Any:
        """Take a submitted application up for review (audited)"""
        application = workflow.claim(current_principal(), application_id)
        return applications.view(application, str(get_locale()))


@applications_blp.route("/applications/<application_id>/request-info")
class RequestInformation(MethodView):
    @requires("official")
    @applications_blp.arguments(NoteSchema)
    @applications_blp.response(200, ApplicationSchema)
    def post(self, data: dict[str, Any], application_id: str) -> Any:
        """Ask the applicant for more information (audited)"""
        application = workflow.request_info(current_principal(), application_id, data["note"])
        return applications.view(application, str(get_locale()))


@applications_blp.route("/applications/<application_id>/approve")
class ApproveApplication(MethodView):
    @requires("official")
    @applications_blp.arguments(OptionalNoteSchema)
    @applications_blp.response(200, ApplicationSchema)
    def post(self, data: dict[str, Any], application_id: str) -> Any:
        """Approve and issue the certificate (audited)"""
        application = workflow.approve(current_principal(), application_id, data.get("note"))
        return applications.view(application, str(get_locale()))


@applications_blp.route("/applications/<application_id>/reject")
class RejectApplication(MethodView):
    @requires("official")
    @applications_blp.arguments(ReasonSchema)
    @applications_blp.response(200, ApplicationSchema)
    def post(self, data: dict[str, Any], application_id: str) -> Any:
        """Reject with a reason (audited)"""
        application = workflow.reject(current_principal(), application_id, data["reason"])
        return applications.view(application, str(get_locale()))


certificates_blp = Blueprint(
    "civic_certificates",
    __name__,
    url_prefix="/api/v1/civic/certificates",
    description="Verifiable e-certificates: check one, fetch the public keys.",
)


@certificates_blp.route("/keys")
class CertificateKeys(MethodView):
    @requires(PUBLIC)
    @certificates_blp.response(200, JwkSetSchema)
    def get(self) -> Any:
        """The public keys certificates are signed with (a JWK Set: OKP, Ed25519)"""
        return certificates.jwks()


@certificates_blp.route("/<code>")
class CertificateVerification(MethodView):
    @requires(PUBLIC)
    @certificates_blp.response(200, VerificationSchema)
    def get(self, code: str) -> Any:
        """Is this certificate genuine and not revoked? What does it state?"""
        return certificates.verify(code)


@certificates_blp.route("/<code>/revoke")
class RevokeCertificate(MethodView):
    @requires("admin")
    @certificates_blp.arguments(ReasonSchema)
    @certificates_blp.response(200, VerificationSchema)
    def post(self, data: dict[str, Any], code: str) -> Any:
        """Revoke a certificate (audited)"""
        return certificates.revoke(code, data["reason"], current_principal())
