"""civic's own errors: the ones whose status or shape core's errors do not give."""

from typing import Any

from core.errors import DomainError, InvalidInput


class FormInvalid(InvalidInput):
    """Several fields at fault at once (a submitted form): 422 naming every one.

    ``errors`` maps a field path (``answers.<code>``, ``documents.<code>``) to its messages.
    """

    def __init__(self, message: Any, errors: dict[str, list[Any]], *, location: str = "form"):
        super().__init__(message, location=location)
        self.errors = errors

    def payload(self) -> dict[str, Any]:
        body = super().payload()
        body["errors"] = {self.location: self.errors}
        return body


class FileTooLarge(DomainError):
    """An uploaded document is over its ``max_bytes``."""

    status = 413
