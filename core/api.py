"""The OpenAPI 3 document (``/openapi.json``) and Swagger UI (``/docs``), served offline."""

from pathlib import Path

import swagger_ui_bundle
from flask import Flask, Response, send_from_directory
from flask_smorest import Api

from core.auth.access import PUBLIC, requires

SWAGGER_ASSETS = Path(swagger_ui_bundle.swagger_ui_path)


def make_api(app: Flask) -> Api:
    """Configure flask-smorest and declare the security schemes."""
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
