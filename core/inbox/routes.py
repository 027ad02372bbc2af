"""``/api/v1/me/notifications``: the caller's inbox."""

from typing import Any

from flask.views import MethodView

from core.api import Blueprint
from core.auth.access import ANY_USER, current_principal, requires
from core.inbox import service
from core.inbox.schemas import InboxQuerySchema, MarkedSchema, NotificationSchema
from core.pagination import SelectPage

blp = Blueprint(
    "inbox", __name__, url_prefix="/api/v1/me/notifications", description="The user's inbox."
)


@blp.route("")
class Inbox(MethodView):
    @requires(ANY_USER)
    @blp.arguments(InboxQuerySchema, location="query")
    @blp.response(200, NotificationSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """My notifications, unread first (paged; see the X-Pagination header)"""
        return service.inbox_query(current_principal().id, unread_only=args["unread"])


@blp.route("/<notification_id>/read")
class MarkRead(MethodView):
    @requires(ANY_USER)
    @blp.response(200, NotificationSchema)
    def post(self, notification_id: str) -> Any:
        """Mark one notification read"""
        return service.mark_read(current_principal().id, notification_id)


@blp.route("/read-all")
class MarkAllRead(MethodView):
    @requires(ANY_USER)
    @blp.response(200, MarkedSchema)
    def post(self) -> Any:
        """Mark all my notifications read"""
        return {"marked": service.mark_all_read(current_principal().id)}
