"""The payment rail's own errors (the rest are ``core.errors``)."""

from typing import Any

from core.errors import DomainError
from core.i18n import _l


class StripeUnavailable(DomainError):
    """Stripe could not be reached and nothing was done: try again later (503)."""

    status = 503

    def __init__(self, message: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": "30"})
        super().__init__(
            message or _l("The payment service is unavailable. Please try again later."),
            **kwargs,
        )
