"""The OpenAPI 3 document (``/openapi.json``), Swagger UI (``/docs``, served offline), and the
``Blueprint`` every module's routes use.

``core.api.Blueprint`` is flask-smorest's, with two differences every module inherits: its
arguments are read by ``core.inputs.Parser`` (bad text, deep JSON and wrong content types are
refused where they enter), and ``@blp.paginate`` bounds ``page`` (``MAX_PAGE``) as well as
``page_size``, and says so in the spec. The ``Api`` refuses a blueprint of another kind, so a
module cannot skip those checks by importing flask-smorest's directly.

Once every module has registered, :meth:`Api.declare_links` adds OpenAPI **links** from each
creating operation to what can then be done with what it created (``POST /lots`` returns a lot
whose ``id`` is the ``{lot_id}`` of ``GET /lots/{lot_id}``, ``PUT /lots/{lot_id}/tariff``...),
derived from the paths, so a client generator and schemathesis's stateful phase (create, then
read, then act) follow them without a line in the modules.
"""

import inspect
import re
from pathlib import Path
from typing import Any

import flask_smorest
import swagger_ui_bundle
from flask import Flask, Response, send_from_directory
from flask_smorest.pagination import PaginationMetadataSchema
from marshmallow import validate

from core import inputs
from core.auth.access import PUBLIC, requires
from core.errors import ErrorSchema

SWAGGER_ASSETS = Path(swagger_ui_bundle.swagger_ui_path)
# A page past this is refused (422) before it reaches the database as an OFFSET.
MAX_PAGE = 1_000_000
PAGINATION_HEADER = {
    "description": "Pagination metadata, a JSON object (see the PaginationMetadata schema): "
    "total, total_pages, first_page, last_page, page, previous_page, next_page.",
    "schema": {"type": "string"},
    "example": '{"total": 42, "total_pages": 5, "first_page": 1, "last_page": 5, "page": 2, '
    '"previous_page": 1, "next_page": 3}',
}


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint reading input through ``core.inputs`` with bounded pages."""

    ARGUMENTS_PARSER = inputs.Parser()
    PAGINATION_ARGUMENTS_PARSER = inputs.Parser()

    def paginate(self, pager: Any = None, **kwargs: Any) -> Any:
        """``@blp.paginate(SelectPage)``, with ``page`` at most :data:`MAX_PAGE`."""
        paginate = super().paginate(pager, **kwargs)

        def decorator(func: Any) -> Any:
            wrapper = paginate(func)
            # The schema flask-smorest made for this view both parses and documents the page.
            schema = wrapper._apidoc["pagination"]["parameters"]["schema"]
            page = schema._declared_fields["page"]
            page.validators = [*page.validators, validate.Range(max=MAX_PAGE)]
            return wrapper

        return decorator

    @staticmethod
    def _make_pagination_metadata(page: int, page_size: int, item_count: int) -> Any:
        """flask-smorest's metadata, dumped by one schema instance instead of a new one per
        request."""
        metadata: dict[str, int] = {"total": item_count}
        if item_count == 0:
            metadata["total_pages"] = 0
            return _PAGINATION_METADATA.dump(metadata)
        last_page = (item_count - 1) // page_size + 1
        metadata.update(total_pages=last_page, first_page=1, last_page=last_page)
        if page <= last_page:
            metadata["page"] = page
            if page > 1:
                metadata["previous_page"] = page - 1
            if page < last_page:
                metadata["next_page"] = page + 1
        return _PAGINATION_METADATA.dump(metadata)


_PAGINATION_METADATA = PaginationMetadataSchema()


class Api(flask_smorest.Api):
    """flask-smorest's Api, declaring ``X-Pagination`` as the string it is and the one error
    shape with its ``error`` code and details."""

    ERROR_SCHEMA = ErrorSchema

    def register_blueprint(self, blp: Any, **options: Any) -> None:
        if not isinstance(blp, Blueprint):
            raise TypeError(
                f"Blueprint {blp.name!r} must be a core.api.Blueprint (it reads input through "
                "core.inputs); import Blueprint from core.api, not from flask_smorest"
            )
        # In the app's context, so a schema may document a setting (core.schemas.CurrentSetting).
        with self._app.app_context():
            super().register_blueprint(blp, **options)

    def declare_links(self) -> int:
        """Add the links of every creating operation (see the module's docstring); returns how
        many were declared."""
        return declare_links(self.spec.to_dict())

    def _register_pagination_header(self) -> None:
        self.spec.components.schema("PaginationMetadata", schema=PaginationMetadataSchema)
        self.spec.components.header("PAGINATION", PAGINATION_HEADER, lazy=True)


def _call_synchronous_functions_directly(app: Flask) -> None:
    """Flask passes every hook and view through ``ensure_sync`` on every request, and its
    ``inspect.iscoroutinefunction`` cost four calls each time (some forty a request): a plain
    function is recognised by its code flags instead, anything else goes the Flask way."""
    ensure_sync = app.ensure_sync

    def fast_ensure_sync(func: Any) -> Any:
        code = getattr(func, "__code__", None)
        if code is not None and not code.co_flags & _ASYNC_FLAGS:
            return func
        return ensure_sync(func)

    app.ensure_sync = fast_ensure_sync  # type: ignore[method-assign]


_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR


def make_api(app: Flask) -> Api:
    """Configure flask-smorest, the way requests are read, and the security schemes."""
    inputs.init_app(app)
    _call_synchronous_functions_directly(app)
    app.config.update(
        API_TITLE="Civic super-app API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # Served from the swagger-ui-bundle package, not a CDN: the docs work offline.
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        API_SPEC_OPTIONS={
            "info": {
                "description": "One account for government services, parking and "
                "pay-after-treatment; one payment rail."
            }
        },
    )
    api = Api(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    api.spec.components.security_scheme(
        "apiKeyAuth", {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    )

    @app.get("/docs/assets/<path:filename>")
    @requires(PUBLIC)
    def swagger_assets(filename: str) -> Response:
        return send_from_directory(SWAGGER_ASSETS, filename)

    return api


OPERATIONS = ("get", "put", "patch", "post", "delete")
PARAMETER = re.compile(r"^\{(\w+)\}$")


def declare_links(spec: dict[str, Any]) -> int:
    """In ``spec`` (an OpenAPI 3 document, changed in place): for each ``POST {collection}``
    whose success answer is an object named after what it creates (``Lot`` for ``{lot_id}``,
    with an ``id``; a ``code`` for a ``{code}``), a link to every operation under
    ``{collection}/{parameter}`` whose path parameters it can all fill: that one from the
    answer, the collection's own from the request."""
    paths: dict[str, dict[str, Any]] = spec.get("paths", {})
    schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    declared = 0
    for collection, item in paths.items():
        creating = item.get("post")
        created = _created(creating, schemas) if creating else None
        if creating is None or created is None:
            continue
        status, name, properties = created
        inherited = re.findall(r"\{(\w+)\}", collection)
        links: dict[str, Any] = {}
        for path, target in paths.items():
            rest = path.removeprefix(collection + "/")
            match = PARAMETER.match(rest.split("/", 1)[0]) if rest != path else None
            if match is None:
                continue
            parameter = match.group(1)
            field = "code" if parameter == "code" else "id"
            names_it = parameter == "code" or parameter.removesuffix("_id") in name.lower()
            fills_all = set(re.findall(r"\{(\w+)\}", path)) == {parameter, *inherited}
            if field not in properties or not names_it or not fills_all:
                continue
            values = {parameter: f"$response.body#/{field}"}
            values.update({each: f"$request.path.{each}" for each in inherited})
            pointer = path.replace("~", "~0").replace("/", "~1")
            for method in OPERATIONS:
                if method in target:
                    links[_link_name(method, rest)] = {
                        "operationRef": f"#/paths/{pointer}/{method}",
                        "parameters": values,
                    }
        if links:
            creating["responses"][status].setdefault("links", {}).update(links)
            declared += len(links)
    return declared


def _created(
    operation: dict[str, Any], schemas: dict[str, Any]
) -> tuple[str, str, set[str]] | None:
    """A creating operation's success status, its answer's schema name and properties."""
    for status in ("201", "200"):
        response = operation.get("responses", {}).get(status)
        if not isinstance(response, dict):
            continue
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        name = schema.get("$ref", "").removeprefix("#/components/schemas/")
        properties = schemas.get(name, {}).get("properties") if name else None
        if properties:
            return status, name, set(properties)
    return None


def _link_name(method: str, rest: str) -> str:
    """``get``, ``post-tariff``, ``delete-spaces-space_id``: unique per creating operation."""
    words = [method] + [part.strip("{}") for part in rest.split("/")[1:]]
    return "-".join(words)
