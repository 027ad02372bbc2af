"""Languages: every message a person reads, in Korean, English or Chinese (Simplified).

Write a message once, in English, as the message id, and mark it so ``pybabel extract`` finds it:

- ``_("...")`` where the text is needed now, inside a request (it uses the request's locale);
- ``_l("...")`` where the text is defined ahead of its use: error messages raised in services,
  inbox titles and bodies, schema messages. A lazy string renders in whatever locale is current
  when it is turned into text: the request's for an error response, the recipient's for an
  inbox message (see :func:`render`).

Placeholders are named, ``_l("Refundable amount is %(amount)s.", amount=Money(500, "KRW"))``;
pass :class:`Money` for an amount so that it is formatted for the reader's locale (₩5,000;
¥50.00), and aware datetimes, which are shown in the city's timezone. Codes and field names stay
English identifiers for programs.

The locale of a request (:func:`select_locale`): the signed-in user's saved ``locale``, else
``Accept-Language`` negotiated among ours (any Chinese tag, ``zh-TW`` included, is served
Simplified ``zh``), else ``DEFAULT_LOCALE``. Outside a request (CLI, logs, sweeps) lazy strings
render in English: operators read those; citizens' inbox messages are rendered explicitly in
the recipient's locale. Every response says which locale it used (``Content-Language``).

Error payloads are translated in one place (:func:`localize_error`, after every request): our
own lazy messages are already in the request's locale; the messages of the libraries
(marshmallow's and webargs' validation messages, werkzeug's and Flask-Limiter's HTTP errors)
are English text, translated here by message id or by matching the English template.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeAlias

from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_currency
from flask import Flask, Response, current_app, g, has_request_context, request
from flask_babel import Babel, force_locale, get_locale, gettext
from flask_babel.speaklater import LazyString
from flask_smorest.exceptions import PreconditionRequired
from werkzeug.datastructures import LanguageAccept
from werkzeug.exceptions import default_exceptions

from core.clock import city_timezone
from core.config import BASE_DIR, is_development

LOCALES = ("ko", "en", "zh")
TRANSLATIONS = BASE_DIR / "core" / "translations"
# What ``pybabel extract`` looks for besides its defaults (``_``, ``gettext``...): make messages
# and the catalog test use the same list.
EXTRACT_KEYWORDS = ("_l", "lazy_gettext")
# Date and time in a message, as people in each city write them ("2026년 11월 3일 오후 3:04").
DATETIME_PATTERNS = {
    "ko": "y년 M월 d일 aaaa h:mm",  # 2026년 11월 3일 오후 3:04
    "zh": "y年M月d日 HH:mm",  # 2026年11月3日 15:04
    "en": "MMM d, y, h:mm a",  # Nov 3, 2026, 3:04 PM
}
# Operators (CLI output, logs) read English.
OPERATOR_LOCALE = "en"

# A message is a message id, or a lazy string made of one (``_l``).
Message: TypeAlias = str | LazyString


@dataclass(frozen=True)
class Money:
    """An amount of minor units in a currency, formatted for the reader when rendered."""

    amount: int
    currency: str


def format_money(amount: int, currency: str, locale: str) -> str:
    """``Money`` for a reader: ₩5,000 (KRW has no minor unit), ¥50.00 for 5000 fen in ``zh``."""
    from core.money import minor_digits  # core.money raises errors written with _l

    major = Decimal(amount).scaleb(-minor_digits(currency))
    return str(format_currency(major, currency.upper(), locale=locale))


def format_time(value: datetime, locale: str) -> str:
    """An aware datetime in the city's timezone, as the reader's locale writes it."""
    pattern = DATETIME_PATTERNS.get(locale, "medium")
    zone = city_timezone()
    return str(format_datetime(value.astimezone(zone), pattern, tzinfo=zone, locale=locale))


def _format_value(value: Any, locale: str) -> Any:
    if isinstance(value, Money):
        return format_money(value.amount, value.currency, locale)
    if isinstance(value, datetime):
        return format_time(value, locale)
    if isinstance(value, LazyString):
        return str(value)
    return value


def current_locale() -> str:
    """The locale messages are rendered in now (the request's, or the one forced)."""
    locale = get_locale()
    return str(locale) if locale is not None else OPERATOR_LOCALE


def _gettext(message: str, **params: Any) -> str:
    """``message`` translated into the current locale, with ``params`` formatted for it."""
    text = str(gettext(message))
    if not params:
        return text
    locale = current_locale()
    return text % {key: _format_value(value, locale) for key, value in params.items()}


def _lazy_gettext(message: str, **params: Any) -> LazyString:
    """A message rendered only when it is turned into text, in the locale current then."""
    return LazyString(_gettext, message, **params)


def _noop(message: str) -> str:
    """Marks a message id for ``pybabel extract`` where it is translated later, by lookup."""
    return message


_ = _gettext
_l = _lazy_gettext
N_ = _noop


def render(message: Message, locale: str, params: dict[str, Any] | None = None) -> str:
    """``message`` (a message id, or a lazy string) translated into ``locale``, with ``params``
    formatted for that locale. Used where no request says whose locale it is (inbox, sweeps)."""
    with force_locale(locale):
        text = str(message) if isinstance(message, LazyString) else _gettext(str(message))
        if params:
            text = text % {key: _format_value(v, locale) for key, v in params.items()}
    return text


def default_locale() -> str:
    """``DEFAULT_LOCALE``: for a request that says nothing, and a recipient who chose nothing."""
    return str(current_app.config["DEFAULT_LOCALE"])


def negotiate(accepted: LanguageAccept) -> str | None:
    """The first of ours the client accepts, by its quality order; a Chinese tag of any region
    or script (zh-CN, zh-Hans, zh-TW, zh-HK) is served Simplified ``zh``, the one we write."""
    for tag, quality in accepted:
        primary = tag.replace("_", "-").split("-", 1)[0].lower()
        if quality > 0 and primary in LOCALES:
            return primary
    return None


def select_locale() -> str:
    """The locale of the current request: the signed-in user's saved choice (carried by the
    principal authentication loaded, so no query), else Accept-Language, else the default."""
    if not has_request_context():
        return OPERATOR_LOCALE
    principal = g.get("principal")
    saved = getattr(principal, "locale", None)
    if saved in LOCALES:
        return str(saved)
    if not request.environ.get("HTTP_ACCEPT_LANGUAGE"):  # nothing to negotiate
        return default_locale()
    return negotiate(request.accept_languages) or default_locale()


# Babel parses the selector's answer unless it is a Locale already (and parsing one looked for
# its locale data file on disk each time): each of ours is parsed once.
_LOCALE_OBJECTS = {locale: Locale.parse(locale) for locale in LOCALES}


def _selected_locale() -> Locale:
    return _LOCALE_OBJECTS[select_locale()]


# --- the libraries' messages -----------------------------------------------------------------
# marshmallow, webargs, werkzeug and Flask-Limiter write English. Their messages are listed here
# so that ``pybabel extract`` puts them in the catalogs; a response's English text is looked up
# by id, or matched against a template whose ``%(name)s`` parts are carried over.

LIBRARY_MESSAGES = (
    # marshmallow: fields and schemas
    N_("Missing data for required field."),
    N_("Field may not be null."),
    N_("Invalid value."),
    N_("Invalid type."),
    N_("Invalid input type."),
    N_("Unknown field."),
    N_("Not a valid string."),
    N_("Not a valid utf-8 string."),
    N_("Not a valid number."),
    N_("Number too large."),
    N_("Not a valid integer."),
    N_("Special numeric values (nan or infinity) are not permitted."),
    N_("Not a valid boolean."),
    N_("Not a valid datetime."),
    N_("Not a valid aware datetime."),
    N_("Not a valid naive datetime."),
    N_("Not a valid date."),
    N_("Not a valid time."),
    N_("Not a valid period of time."),
    N_("Not a valid list."),
    N_("Not a valid tuple."),
    N_("Not a valid mapping type."),
    N_("Not a valid UUID."),
    N_("Not a valid URL."),
    N_("Not a valid email address."),
    N_("Not a valid IP address."),
    N_("Not a valid IPv4 address."),
    N_("Not a valid IPv6 address."),
    N_("Not a valid IP interface."),
    N_("Not a valid IPv4 interface."),
    N_("Not a valid IPv6 interface."),
    N_("String does not match expected pattern."),
    N_("Invalid input."),
    # webargs
    N_("Invalid JSON body."),
)

# marshmallow's validators put values into their messages: the English rendering is matched.
LIBRARY_TEMPLATES = (
    N_("Must be one of: %(choices)s."),
    N_("Must be greater than or equal to %(min)s and less than or equal to %(max)s."),
    N_("Must be greater than or equal to %(min)s and less than %(max)s."),
    N_("Must be greater than %(min)s and less than or equal to %(max)s."),
    N_("Must be greater than %(min)s and less than %(max)s."),
    N_("Must be greater than or equal to %(min)s."),
    N_("Must be greater than %(min)s."),
    N_("Must be less than or equal to %(max)s."),
    N_("Must be less than %(max)s."),
    N_("Shorter than minimum length %(min)s."),
    N_("Longer than maximum length %(max)s."),
    N_("Length must be between %(min)s and %(max)s."),
    N_("Length must be %(equal)s."),
    N_("Must be equal to %(other)s."),
    N_("One or more of the choices you made was not in: %(choices)s."),
    N_("One or more of the choices you made was in: %(values)s."),
)

# HTTP errors raised by the framework carry werkzeug's long English description (or, for 429,
# Flask-Limiter's limit): a person reads one plain sentence for the status instead.
HTTP_MESSAGES = {
    400: N_("The request could not be understood. Please check it and try again."),
    401: N_("Authentication required."),
    403: N_("You do not have permission to do this."),
    404: N_("Not found."),
    405: N_("This method is not allowed for this address."),
    406: N_("The requested response format is not available."),
    409: N_("The request conflicts with the current state. Please try again."),
    410: N_("This is no longer available."),
    412: N_("This item has changed since you read it. Please read it again."),
    413: N_("The request is too large."),
    414: N_("The address is too long."),
    415: N_("This content type is not supported. Please send JSON."),
    422: N_("Some of the information sent is not valid."),
    428: N_("This request must say which version it changes (If-Match)."),
    429: N_("Too many requests. Please wait a moment and try again."),
    500: N_("Something went wrong on our side. Please try again later."),
    502: N_("The service is temporarily unavailable. Please try again later."),
    503: N_("The service is temporarily unavailable. Please try again later."),
    504: N_("The service is temporarily unavailable. Please try again later."),
}
_FRAMEWORK_DESCRIPTIONS = {code: {cls.description} for code, cls in default_exceptions.items()}
_FRAMEWORK_DESCRIPTIONS[428].add(PreconditionRequired.description)  # flask-smorest's (ETags)
_RATE_LIMIT = re.compile(r"^\d+ per \d+ \w+$")  # Flask-Limiter's description: "10 per 1 minute"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _template_pattern(message_id: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(message_id)  # text, name, text, name, ..., text
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$")


_TEMPLATES = [(_template_pattern(message_id), message_id) for message_id in LIBRARY_TEMPLATES]


def translate_text(text: str) -> str:
    """English text of a library (or any message id), in the current locale; unknown text is
    returned as it is (it may already be translated: our own messages are)."""
    translated = str(gettext(text))
    if translated != text:
        return translated
    for pattern, message_id in _TEMPLATES:
        match = pattern.match(text)
        if match:
            return str(gettext(message_id)) % match.groupdict()
    return text


def _translated(value: Any) -> Any:
    if isinstance(value, str):
        return translate_text(value)
    if isinstance(value, list):
        return [_translated(item) for item in value]
    if isinstance(value, dict):
        return {key: _translated(item) for key, item in value.items()}
    return value


def _http_message(status: int, message: Any) -> str | None:
    """Our sentence for a framework's HTTP error, None when the message is someone's own."""
    if status not in HTTP_MESSAGES or not isinstance(message, str):
        return None
    is_framework = message in _FRAMEWORK_DESCRIPTIONS.get(status, set())
    if is_framework or (status == 429 and _RATE_LIMIT.match(message)):
        return _gettext(HTTP_MESSAGES[status])
    return None


def localize_error(body: dict[str, Any], status: int) -> dict[str, Any]:
    """The error payload with ``message`` and every field error in the current locale; ``code``,
    ``status`` and field names are identifiers and stay as they are."""
    localized = dict(body)
    if "message" in body:
        message = body["message"]
        localized["message"] = _http_message(status, message) or _translated(message)
    if "errors" in body:
        localized["errors"] = _translated(body["errors"])
    return localized


def _response_locale() -> str:
    """The request's locale, without Babel's parsing when nothing has asked for it yet."""
    babel_state = g.get("_flask_babel")
    locale = getattr(babel_state, "babel_locale", None)
    return str(locale) if locale is not None else select_locale()


def _localize_response(response: Response) -> Response:
    """After every request: say the locale used, and translate an error's JSON payload."""
    headers = response.headers
    headers.add("Content-Language", _response_locale())  # add: nothing else sets it
    if "Vary" in headers:
        response.vary.add("Accept-Language")
    else:  # the usual case: no header to parse and merge
        headers.add("Vary", "Accept-Language")
    if response.status_code < 400 or not response.is_json or response.direct_passthrough:
        return response
    body = response.get_json(silent=True)
    if isinstance(body, dict):
        localized = localize_error(body, response.status_code)
        if localized != body:  # serialised as jsonify does (compact)
            response.set_data(current_app.json.dumps(localized, separators=(",", ":")) + "\n")
    return response


# --- wiring ----------------------------------------------------------------------------------


def catalog_paths(locale: str) -> tuple[Path, Path]:
    """The ``.po`` source and the compiled ``.mo`` of a locale."""
    folder = TRANSLATIONS / locale / "LC_MESSAGES"
    return folder / "messages.po", folder / "messages.mo"


def stale_catalogs() -> Iterator[str]:
    """Locales whose compiled catalog is missing or older than its source .po file."""
    for locale in LOCALES:
        po, mo = catalog_paths(locale)
        if po.exists() and (not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime):
            yield locale


def init_app(app: Flask) -> None:
    if app.config["DEFAULT_LOCALE"] not in LOCALES:
        raise RuntimeError(f"DEFAULT_LOCALE must be one of {', '.join(LOCALES)}")
    stale = list(stale_catalogs())
    if stale and not is_development(app.config):
        raise RuntimeError(f"Compile the catalogs first (make compile-messages): {stale}")
    if stale:
        app.logger.warning("catalogs not compiled; run make compile-messages: %s", stale)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    app.config["BABEL_DEFAULT_LOCALE"] = app.config["DEFAULT_LOCALE"]
    Babel(app, locale_selector=_selected_locale)
    app.after_request(_localize_response)
