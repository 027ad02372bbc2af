"""Languages: every message a person reads, in Korean, English or Chinese (Simplified).

Write a message once, in English, as the message id, and mark it so ``pybabel extract`` finds it:

- ``_("...")`` where the text is needed now, inside a request (it uses the request's locale);
- ``_l("...")`` where the text is defined ahead of its use: error messages raised in services,
  inbox titles and bodies, schema messages. A lazy string renders in whatever locale is current
  when it is turned into text: the request's for an error response, the recipient's for an
  inbox message (see :func:`render`).

Placeholders are named, ``%(amount)s``; pass :class:`Money` for an amount so that it is
formatted for the reader's locale (₩5,000; ¥50.00), and aware datetimes, which are shown in the
city's timezone. Codes and field names stay English identifiers for programs.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from babel.dates import format_datetime
from babel.numbers import format_currency
from flask import Flask, current_app, has_request_context, request
from flask_babel import Babel, force_locale, gettext, lazy_gettext
from flask_babel.speaklater import LazyString

from core.clock import city_timezone
from core.config import BASE_DIR
from core.money import minor_digits

LOCALES = ("ko", "en", "zh")

_ = gettext
_l = lazy_gettext


@dataclass(frozen=True)
class Money:
    """An amount of minor units in a currency, formatted for the reader when rendered."""

    amount: int
    currency: str


def format_money(amount: int, currency: str, locale: str) -> str:
    """``Money`` for a reader: ₩5,000 (KRW has no minor unit), ¥50.00 for 5000 fen in ``zh``."""
    major = Decimal(amount).scaleb(-minor_digits(currency))
    return str(format_currency(major, currency.upper(), locale=locale))


def _format_value(value: Any, locale: str) -> Any:
    if isinstance(value, Money):
        return format_money(value.amount, value.currency, locale)
    if isinstance(value, datetime):
        local = value.astimezone(city_timezone())
        return format_datetime(local, "medium", tzinfo=city_timezone(), locale=locale)
    return value


def render(message: Any, locale: str, params: dict[str, Any] | None = None) -> str:
    """``message`` (a message id, or a lazy string) translated into ``locale``, with ``params``
    formatted for that locale. Used where no request says whose locale it is (inbox, sweeps)."""
    with force_locale(locale):
        text = str(message) if isinstance(message, LazyString) else gettext(str(message))
        if params:
            text = text % {key: _format_value(v, locale) for key, v in params.items()}
    return text


def default_locale() -> str:
    return str(current_app.config["DEFAULT_LOCALE"])


def _request_locale() -> str:
    """The locale of the current request: Accept-Language among ours, else the default."""
    if not has_request_context():
        return default_locale()
    return request.accept_languages.best_match(LOCALES) or default_locale()


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(BASE_DIR / "core" / "translations"))
    app.config["BABEL_DEFAULT_LOCALE"] = app.config["DEFAULT_LOCALE"]
    Babel(app, locale_selector=_request_locale)
