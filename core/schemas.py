"""Schema pieces every module shares.

- :class:`StrictSchema` for requests (an unknown field is a 422, not silently dropped);
- :class:`Name` for names, titles, labels and reasons: surrounding whitespace is trimmed, so
  a blank one is refused like an empty one; the spec says it needs a non-blank character;
- :class:`AwareDateTime` for times in requests: ISO 8601 with an offset, returned in UTC, and
  a 422 for a time that exists in no UTC (``0001-01-01T00:00:00+14:00``);
- :class:`CurrentSetting`: a value that must equal a setting, documented as a one-value enum.

NUL characters, unpaired surrogates and deep JSON are refused before any schema sees them
(``core.inputs``).
"""

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import current_app
from marshmallow import validate

from core.i18n import _, _l

# Python's notion of whitespace: what str.strip() removes is what the spec's pattern excludes.
NOT_BLANK_PATTERN = r"\S"


class StrictSchema(ma.Schema):
    """A request schema that rejects unknown fields (a typo must not be silently dropped)."""

    class Meta:
        unknown = ma.RAISE


class Name(ma.fields.String):
    """A name-like string: trimmed, and refused when nothing but whitespace is left.

    ``Name(max_length=200)``; it is required to hold at least one non-blank character.
    """

    def __init__(self, *, max_length: int, **kwargs: Any) -> None:
        metadata = {"pattern": NOT_BLANK_PATTERN, **kwargs.pop("metadata", {})}
        validators = [
            validate.Length(min=1, max=max_length),
            *_as_list(kwargs.pop("validate", None)),
        ]
        super().__init__(validate=validators, metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text.strip():
            raise ma.ValidationError(_("Must not be blank."))
        return text.strip()


def _as_list(validators: Any) -> list[Any]:
    if validators is None:
        return []
    return list(validators) if isinstance(validators, list | tuple) else [validators]


class AwareDateTime(ma.fields.AwareDateTime):
    """An ISO 8601 time with an offset, loaded as UTC; a time outside UTC's range is a 422."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise ma.ValidationError(_("Out of range.")) from None


class CurrentSetting(validate.Validator):
    """The value must equal the setting ``name`` of the running app (``choices`` is what
    the spec shows as the field's ``enum``); ``error`` may use ``%(current)s``."""

    def __init__(self, name: str, error: str | None = None) -> None:
        self.name = name
        self.error = error or _l("Must be %(current)s.")

    @property
    def choices(self) -> list[Any]:
        return [current_app.config[self.name]]

    def __call__(self, value: Any) -> Any:
        if value not in self.choices:
            raise ma.ValidationError(str(self.error) % {"current": self.choices[0]})
        return value
