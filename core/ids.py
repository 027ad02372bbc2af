"""Opaque public identifiers: never sequential integers."""

import uuid


def new_id() -> str:
    """A fresh random UUID4 as a string."""
    return str(uuid.uuid4())
