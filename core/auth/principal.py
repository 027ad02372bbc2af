"""The authenticated caller."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a user (with a role) or an organisation (with a kind)."""

    kind: str  # "user" or "organisation"
    id: str
    name: str
    role: str  # the user's role, or the organisation's kind
    department: str | None = None
    session_id: str | None = None
    locale: str | None = None  # the user's saved language (ko, en, zh); None: negotiate
    email: str | None = None

    @property
    def actor(self) -> str:
        """How the audit trail names this caller."""
        return f"{self.kind}:{self.id}"

    @property
    def is_user(self) -> bool:
        return self.kind == "user"
