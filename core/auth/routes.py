"""Accounts and tokens (``/api/v1/auth``) and organisations (``/api/v1/admin/organisations``)."""

from typing import Any

from flask import current_app
from flask.views import MethodView

from core.api import Blueprint
from core.auth import service
from core.auth.access import ANY_ORGANISATION, ANY_USER, PUBLIC, current_principal, requires
from core.auth.schemas import (
    ApiKeyCreateSchema,
    ApiKeySchema,
    IssuedApiKeySchema,
    LoginSchema,
    MeSchema,
    MeUpdateSchema,
    OrganisationCreateSchema,
    OrganisationSchema,
    RefreshSchema,
    RegisterSchema,
    TokenPairSchema,
    UserSchema,
)
from core.limiter import limiter, login_email_key
from core.security import no_store

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Accounts and tokens.")
orgs_blp = Blueprint(
    "organisations",
    __name__,
    url_prefix="/api/v1/admin/organisations",
    description="Organisations (hospitals, parking operators, Open311 clients) and API keys.",
)


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def _register_limit() -> str:
    return str(current_app.config["REGISTER_RATE_LIMIT"])


@blp.route("/register")
class Register(MethodView):
    decorators = [limiter.limit(_register_limit, scope="register")]

    @no_store
    @requires(PUBLIC)
    @blp.arguments(RegisterSchema)
    @blp.response(201, UserSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Register a citizen account"""
        return service.register_citizen(**data)


@blp.route("/login")
class Login(MethodView):
    decorators = [
        limiter.limit(_login_limit),
        limiter.limit(_login_limit, key_func=login_email_key, scope="login-email"),
    ]

    @no_store
    @requires(PUBLIC)
    @blp.arguments(LoginSchema)
    @blp.response(200, TokenPairSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Log in with email and password"""
        return service.login(data["email"], data["password"])


@blp.route("/refresh")
class Refresh(MethodView):
    @no_store
    @requires(PUBLIC)
    @blp.arguments(RefreshSchema)
    @blp.response(200, TokenPairSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Rotate a refresh token for a new pair"""
        return service.refresh(data["refresh_token"])


@blp.route("/logout")
class Logout(MethodView):
    @requires(ANY_USER)
    @blp.response(204)
    def post(self) -> None:
        """End this login session (its access and refresh tokens stop working)"""
        service.logout(current_principal())


@blp.route("/me")
class Me(MethodView):
    @requires(ANY_USER, ANY_ORGANISATION)
    @blp.response(200, MeSchema)
    def get(self) -> Any:
        """Who am I: the user, or the organisation behind an API key"""
        return service.describe(current_principal())

    @requires(ANY_USER)
    @blp.arguments(MeUpdateSchema)
    @blp.response(200, MeSchema)
    def patch(self, data: dict[str, Any]) -> Any:
        """Change my settings: the language of my messages (locale)"""
        return service.update_me(current_principal(), locale=data["locale"])


@orgs_blp.route("")
class Organisations(MethodView):
    @requires("admin")
    @orgs_blp.response(200, OrganisationSchema(many=True))
    def get(self) -> Any:
        """List organisations"""
        return service.list_organisations()

    @requires("admin")
    @orgs_blp.arguments(OrganisationCreateSchema)
    @orgs_blp.response(201, OrganisationSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create an organisation"""
        return service.create_organisation(data["name"], data["kind"], current_principal())


@orgs_blp.route("/<organisation_id>/api-keys")
class ApiKeys(MethodView):
    @requires("admin")
    @orgs_blp.response(200, ApiKeySchema(many=True))
    def get(self, organisation_id: str) -> Any:
        """List an organisation's API keys (prefixes only)"""
        return service.list_api_keys(organisation_id)

    @requires("admin")
    @orgs_blp.arguments(ApiKeyCreateSchema)
    @orgs_blp.response(201, IssuedApiKeySchema)
    def post(self, data: dict[str, Any], organisation_id: str) -> Any:
        """Issue a new API key (shown once); older keys stay valid until revoked"""
        return service.issue_api_key(organisation_id, data.get("label"), current_principal())


@orgs_blp.route("/<organisation_id>/api-keys/<key_id>")
class ApiKeyItem(MethodView):
    @requires("admin")
    @orgs_blp.response(200, ApiKeySchema)
    def delete(self, organisation_id: str, key_id: str) -> Any:
        """Revoke an API key"""
        return service.revoke_api_key(organisation_id, key_id, current_principal())
