"""Answers checked against a service version's form: every error names its field."""

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from core.i18n import _l

TEXT_MAX = {"string": 200, "text": 4000}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{6,31}$")

REQUIRED = _l("Missing data for required field.")
UNKNOWN = _l("Unknown field.")


def check_answers(
    fields: list[dict[str, Any]], answers: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The answers kept (in the form's order, empty ones left out) and the errors, keyed
    ``answers.<code>``."""
    errors: dict[str, list[Any]] = {}
    known = {field["code"] for field in fields}
    for code in answers:
        if code not in known:
            errors[f"answers.{code}"] = [UNKNOWN]
    kept: dict[str, Any] = {}
    for field in fields:
        value = answers.get(field["code"])
        if _empty(value):
            if field.get("required"):
                errors[f"answers.{field['code']}"] = [REQUIRED]
            continue
        problem = _problem(field, value)
        if problem is not None:
            errors[f"answers.{field['code']}"] = [problem]
        else:
            kept[field["code"]] = value
    return kept, errors


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _problem(field: dict[str, Any], value: Any) -> Any:
    """What is wrong with a non-empty ``value`` for ``field``; None when it is right."""
    return _CHECKS[field["datatype"]](field, value)


def _text(field: dict[str, Any], value: Any) -> Any:
    if not isinstance(value, str):
        return _l("Not a valid string.")
    if field["datatype"] == "string" and ("\n" in value or "\r" in value):
        return _l("Must be one line.")
    limit = field.get("max_length") or TEXT_MAX[field["datatype"]]
    if len(value) > limit:
        return _l("Longer than maximum length %(max)s.", max=limit)
    if field.get("pattern") and not re.fullmatch(field["pattern"], value):
        return _l("String does not match expected pattern.")
    return None


def _number(field: dict[str, Any], value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _l("Not a valid number.")
    if field.get("min") is not None and value < field["min"]:
        return _l("Must be greater than or equal to %(min)s.", min=_plain(field["min"]))
    if field.get("max") is not None and value > field["max"]:
        return _l("Must be less than or equal to %(max)s.", max=_plain(field["max"]))
    return None


def _plain(number: float) -> int | float:
    return int(number) if float(number).is_integer() else number


def _date(_field: dict[str, Any], value: Any) -> Any:
    try:
        date.fromisoformat(value)
    except (TypeError, ValueError):
        return _l("Not a valid date.")
    return None if len(value) == 10 else _l("Not a valid date.")


def _datetime(_field: dict[str, Any], value: Any) -> Any:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        return _l("Not a valid aware datetime.")
    return None


def _email(_field: dict[str, Any], value: Any) -> Any:
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.match(value):
        return _l("Not a valid email address.")
    return None


def _phone(_field: dict[str, Any], value: Any) -> Any:
    if not isinstance(value, str) or not _PHONE.match(value):
        return _l("Not a phone number.")
    return None


def _boolean(_field: dict[str, Any], value: Any) -> Any:
    return None if isinstance(value, bool) else _l("Not a valid boolean.")


def _keys(field: dict[str, Any]) -> set[str]:
    return {value["key"] for value in field["values"]}


def _choices(field: dict[str, Any]) -> str:
    return ", ".join(value["key"] for value in field["values"])


def _single(field: dict[str, Any], value: Any) -> Any:
    if not isinstance(value, str) or value not in _keys(field):
        return _l("Must be one of: %(choices)s.", choices=_choices(field))
    return None


def _multiple(field: dict[str, Any], value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return _l("Not a valid list.")
    if not set(value) <= _keys(field) or len(set(value)) != len(value):
        return _l(
            "One or more of the choices you made was not in: %(choices)s.", choices=_choices(field)
        )
    return None


_CHECKS: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    "string": _text,
    "text": _text,
    "number": _number,
    "date": _date,
    "datetime": _datetime,
    "email": _email,
    "phone": _phone,
    "boolean": _boolean,
    "singlevaluelist": _single,
    "multivaluelist": _multiple,
}
