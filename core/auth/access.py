"""Who is calling, and the one decorator every view uses to say who may call it.

``@requires("citizen")``, ``@requires("admin")``, ``@requires("hospital")`` (an organisation
kind), ``@requires(ANY_USER)``, ``@requires(PUBLIC)``. A test walks the URL map and fails for
any API view without it, so "every route declares who may call it" cannot silently regress.
"""

from collections.abc import Callable
from copy import deepcopy
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from core.auth import service
from core.auth.models import ORG_KINDS, ROLES
from core.auth.principal import Principal
from core.errors import Forbidden, Unauthorized
from core.i18n import _l

PUBLIC = "public"
ANY_USER = "any_user"
ANY_ORGANISATION = "any_organisation"

F = TypeVar("F", bound=Callable[..., Any])


def _allows(principal: Principal, allowed: tuple[str, ...]) -> bool:
    if principal.role in allowed:
        return True
    if ANY_USER in allowed and principal.is_user:
        return True
    return ANY_ORGANISATION in allowed and not principal.is_user


def _security_for(allowed: tuple[str, ...]) -> list[dict[str, list[str]]]:
    schemes: list[dict[str, list[str]]] = []
    if ANY_USER in allowed or set(allowed) & set(ROLES):
        schemes.append({"bearerAuth": []})
    if ANY_ORGANISATION in allowed or set(allowed) & set(ORG_KINDS):
        schemes.append({"apiKeyAuth": []})
    return schemes


def requires(*allowed: str) -> Callable[[F], F]:
    """Let only callers whose role or organisation kind is in ``allowed`` reach the view."""
    known = {PUBLIC, ANY_USER, ANY_ORGANISATION, *ROLES, *ORG_KINDS}
    unknown = set(allowed) - known
    if not allowed or unknown:
        raise ValueError(f"requires() needs known roles, got {sorted(unknown) or 'nothing'}")

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if PUBLIC not in allowed:
                principal = authenticate()
                if not _allows(principal, allowed):
                    raise Forbidden(_l("Your role may not call this endpoint."))
            return view(*args, **kwargs)

        wrapper.__access__ = allowed  # type: ignore[attr-defined]
        if PUBLIC not in allowed:
            apidoc = deepcopy(getattr(wrapper, "_apidoc", {}))
            manual = apidoc.setdefault("manual_doc", {})
            manual["security"] = _security_for(allowed)
            wrapper._apidoc = apidoc  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def authenticate() -> Principal:
    """The caller of the current request, from a Bearer token or an X-API-Key; else 401."""
    if "principal" in g:
        return g.principal
    header = request.headers.get("Authorization", "")
    api_key = request.headers.get("X-API-Key")
    if header.startswith("Bearer "):
        principal = service.principal_from_access_token(header[len("Bearer ") :].strip())
    elif api_key:
        principal = service.principal_from_api_key(api_key.strip())
    else:
        raise Unauthorized()
    g.principal = principal
    return principal


def current_principal() -> Principal:
    """The authenticated caller (a view decorated with ``requires`` has already checked it)."""
    return authenticate()
