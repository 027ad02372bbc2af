"""``/api/v1/admin/audit``: the audit trail, for administrators."""

from typing import Any

from flask.views import MethodView

from core.api import Blueprint
from core.audit import service
from core.audit.schemas import AuditEntrySchema, AuditQuerySchema
from core.auth.access import requires
from core.pagination import SelectPage

blp = Blueprint("audit", __name__, url_prefix="/api/v1/admin/audit", description="Audit trail.")


@blp.route("")
class AuditTrail(MethodView):
    @requires("admin")
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditEntrySchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Search the audit trail by actor, object and time, newest first (paged)"""
        return service.search(**args)
