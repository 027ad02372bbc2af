"""Parking's own refusals."""

from typing import Any

from core.errors import Conflict, InvalidInput, Unauthorized
from core.i18n import _l


class ReservationConflict(Conflict):
    """The space is already held, booked or in use for (part of) that window: 409."""

    def __init__(self, message: Any = None, **kwargs: Any) -> None:
        super().__init__(message or _l("This space is already reserved for that time."), **kwargs)


class GatewayKeyInvalid(Unauthorized):
    """A sensor gateway presented no key, an unknown one, or a revoked one: 401."""

    def __init__(self, message: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'ApiKey realm="parking-gateways"'})
        super().__init__(message or _l("Gateway key is not valid."), **kwargs)


class RuleBroken(InvalidInput):
    """A reservation rule refused the request: 422 naming the rule (``rule`` in the body)."""

    def __init__(self, message: Any, *, rule: str, field: str | None = None) -> None:
        super().__init__(message, field=field, details={"rule": rule})
        self.rule = rule
