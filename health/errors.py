"""health's own errors: the cases whose status, or whose extra fields, tell the app what to do.

Each carries an ``error`` code for programs (the message is for people, in their language).
"""

from datetime import datetime
from typing import Any

from core.errors import Conflict, DomainError, Forbidden, InvalidInput


class JoinRefused(InvalidInput):
    """Joining pay-later is refused; ``missing`` names every requirement not met (422)."""

    error_code = "requirements_not_met"

    def __init__(self, message: Any, missing: dict[str, Any]) -> None:
        super().__init__(message, details={"missing": sorted(missing)})
        self.problems = missing

    def payload(self) -> dict[str, Any]:
        body = super().payload()
        body["errors"] = {"json": {name: [str(text)] for name, text in self.problems.items()}}
        return body


class LimitExceeded(Conflict):
    """A posting would take the citizen's outstanding total over the limit (409)."""

    error_code = "limit_exceeded"

    def __init__(self, message: Any, *, available: int, currency: str) -> None:
        super().__init__(
            message, field="items", details={"available": available, "currency": currency}
        )


class FaceImageInvalid(InvalidInput):
    """No face, several faces, or not an image at all (422); ``error`` says which."""

    def __init__(self, message: Any, reason: str) -> None:
        super().__init__(message, field="image", location="files")
        self.error_code = reason


class FaceReplayed(InvalidInput):
    """The photo is practically identical to one offered before: not a new capture (422)."""

    error_code = "face_replayed"

    def __init__(self, message: Any, *, attempts_left: int) -> None:
        super().__init__(
            message, field="image", location="files", details={"attempts_left": attempts_left}
        )


class FaceMismatch(Forbidden):
    """The face does not match the enrolled one (403), with the attempts left before a lock."""

    error_code = "face_mismatch"

    def __init__(self, message: Any, *, attempts_left: int) -> None:
        super().__init__(message, details={"attempts_left": attempts_left})


class FaceLocked(DomainError):
    """Face payment is locked after too many failed attempts (423) until ``unlocks_at``."""

    status = 423
    error_code = "face_locked"

    def __init__(self, message: Any, *, unlocks_at: datetime, retry_after: int) -> None:
        super().__init__(
            message,
            headers={"Retry-After": str(max(retry_after, 1))},
            details={"unlocks_at": unlocks_at.isoformat()},
        )


class ImageTooLarge(DomainError):
    """The uploaded photo is over ``FACE_MAX_UPLOAD_BYTES`` (413)."""

    status = 413
    error_code = "image_too_large"

    def __init__(self, message: Any) -> None:
        super().__init__(message, field="image", location="files")


class PaymentDeclined(DomainError):
    """The card was declined, or payments refused to charge (no saved card...): 402; the bills
    stay payable. ``error`` is ``card_declined`` or ``payment_refused``."""

    status = 402

    def __init__(
        self,
        message: Any,
        *,
        settlement_id: str,
        decline_code: str | None,
        error: str = "card_declined",
    ) -> None:
        super().__init__(
            message, details={"settlement_id": settlement_id, "decline_code": decline_code}
        )
        self.error_code = error
