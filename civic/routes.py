"""``/api/v1/civic``: the credit score, the catalog, applications, the officials' queue and
certificates. Thin: parse, call one service function, return."""

from typing import Any

from flask.views import MethodView
from flask_babel import get_locale
from flask_smorest import Blueprint

from civic.schemas import (
    BandsInputSchema,
    BandsSchema,
    CreditEventCreateSchema,
    CreditSchema,
    DepartmentCreateSchema,
    DepartmentSchema,
    LangSchema,
    ScoreEventSchema,
    ServiceChangeSchema,
    ServiceCreateSchema,
    ServiceDefinitionSchema,
    ServiceSchema,
    ServiceSearchSchema,
)
from civic.service import catalog, credit
from core.auth.access import PUBLIC, current_principal, requires
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
