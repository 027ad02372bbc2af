"""Where input enters: request bodies, JSON, query strings, paths and headers, checked once.

Every view reads its arguments through flask-smorest (``core.api.Blueprint``), whose webargs
parser is :class:`Parser`; code that calls ``request.get_json()`` goes through
:class:`JSONProvider`. Both load JSON with :func:`loads`. So, for every module at once:

- a string (value or key) holding a NUL character or an unpaired UTF-16 surrogate is a 422
  naming the field: PostgreSQL refuses NUL where SQLite stores it, and a lone surrogate cannot
  be encoded at all, so both would otherwise be a 500, or a difference between databases;
- JSON nested deeper than :data:`MAX_JSON_DEPTH` is a 400 (Python's parser would recurse);
- a body that is not JSON is a 415 naming ``application/json`` (webargs would report every
  field "missing");
- a chunked body (no ``Content-Length``) longer than ``MAX_CONTENT_LENGTH`` is a 413 (werkzeug
  stops reading at the limit and hands on the truncated body);
- a NUL in a path segment matches nothing (404) and a NUL in a header is a 400.
"""

import json
from collections.abc import Iterable
from typing import Any

import flask
import marshmallow as ma
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import BadRequest, NotFound, RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream

from core.i18n import _l

MAX_JSON_DEPTH = 32
BAD_TEXT = _l("Text must not contain NUL characters or unpaired surrogates.")


def is_bad_text(value: str) -> bool:
    """Whether ``value`` holds a NUL or an unpaired surrogate (text no database can keep)."""
    if "\x00" in value:
        return True
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class JSONTooDeep(ValueError):
    """JSON nested deeper than :data:`MAX_JSON_DEPTH`."""


class BadText(ValueError):
    """A string in a JSON document that :func:`is_bad_text`; ``path`` leads to it."""

    def __init__(self, path: tuple[str | int, ...]) -> None:
        super().__init__(f"bad text at {'.'.join(map(str, path)) or 'the top level'}")
        self.path = path


def loads(data: str | bytes) -> Any:
    """Parse JSON text, refusing deep nesting (:class:`JSONTooDeep`) and bad text
    (:class:`BadText`); malformed JSON raises ``json.JSONDecodeError`` as usual, and a number
    Python will not read (over 4,300 digits) a ``ValueError``."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        document = json.loads(text)
    except RecursionError:
        raise JSONTooDeep() from None
    _check(document)
    return document


def _check(document: Any) -> None:
    """Walk the document without recursion: depth, then every key and string."""
    pending: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            if is_bad_text(value):
                raise BadText(path)
            continue
        if not isinstance(value, dict | list):
            continue
        if len(path) >= MAX_JSON_DEPTH:
            raise JSONTooDeep()
        items: Iterable[tuple[str | int, Any]] = (
            value.items() if isinstance(value, dict) else enumerate(value)
        )
        for key, item in items:
            if isinstance(key, str) and is_bad_text(key):
                raise BadText((*path, _printable(key)))
            pending.append((item, (*path, key)))


def _printable(text: str) -> str:
    """A bad key, escaped so that the error response can name it."""
    escaped = text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace")
    return escaped.decode("utf-8")


def _messages_at(path: tuple[str | int, ...]) -> dict[Any, Any] | list[Any]:
    """Marshmallow's error shape for one message at ``path``: ``{"a": {0: {"b": [msg]}}}``."""
    messages: dict[Any, Any] | list[Any] = [BAD_TEXT]
    for key in reversed(path):
        messages = {key: messages}
    return messages


class JSONProvider(DefaultJSONProvider):
    """``request.get_json()`` with the same checks (its errors become a 400); answers in UTF-8
    (한국어, 中文 readable and shorter than ``\\u`` escapes)."""

    ensure_ascii = False

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)


class _CappedStream(LimitedStream):
    """A body without ``Content-Length``, capped at ``MAX_CONTENT_LENGTH``: more than that is
    a 413, not a body silently cut at the limit."""

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted and self._stream.read(1):
            raise RequestEntityTooLarge()
        return data


class Request(flask.Request):
    """Flask's request, with a chunked body bounded like one with a ``Content-Length``."""

    @cached_property
    def stream(self) -> Any:
        limit = self.max_content_length
        if (
            self.content_length is None
            and limit is not None
            and "wsgi.input_terminated" in self.environ
        ):
            return _CappedStream(self.environ["wsgi.input"], limit, is_max=True)
        return get_input_stream(self.environ, max_content_length=limit)


def _has_body(req: flask.Request) -> bool:
    return bool(req.content_length) or "chunked" in req.headers.get("Transfer-Encoding", "")


class Parser(FlaskParser):
    """flask-smorest's argument parser with the checks above, for every location.

    A schema given as a class (flask-smorest's page parameters are) is instantiated once, not
    on every request: building a marshmallow schema copies all its fields.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schemas: dict[type[ma.Schema], ma.Schema] = {}

    def _get_schema(self, argmap: Any, req: flask.Request) -> ma.Schema:
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            schema = self._schemas.get(argmap)
            if schema is None:
                schema = self._schemas[argmap] = argmap()
            return schema
        return super()._get_schema(argmap, req)

    def load_json(self, req: flask.Request, schema: ma.Schema) -> Any:
        if not webargs_core.is_json(req.mimetype):
            if req.mimetype or _has_body(req):
                raise UnsupportedMediaType(
                    _l("Send the body as JSON (Content-Type: application/json).")
                )
            return webargs_core.missing
        raw = req.get_data(cache=True)
        if not raw:
            return webargs_core.missing
        try:
            return loads(raw)
        except JSONTooDeep:
            raise BadRequest(
                _l("JSON is nested too deeply (at most %(depth)s levels).", depth=MAX_JSON_DEPTH)
            ) from None
        except BadText as error:
            raise ma.ValidationError(_messages_at(error.path)) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            self._handle_invalid_json_error(error, req)
        except ValueError:  # e.g. an integer of more than 4,300 digits
            raise BadRequest(_l("The body is not valid JSON.")) from None

    def load_querystring(self, req: flask.Request, schema: ma.Schema) -> Any:
        refuse_bad_pairs(req.args.items(multi=True))
        return super().load_querystring(req, schema)

    def load_form(self, req: flask.Request, schema: ma.Schema) -> Any:
        refuse_bad_pairs(req.form.items(multi=True))
        return super().load_form(req, schema)


def refuse_bad_pairs(pairs: Iterable[tuple[str, str]]) -> None:
    """A 422 naming each key whose key or value holds text no database can keep (for a parser
    location of a module's own, e.g. a multipart body read as one schema)."""
    errors = {_printable(k): [BAD_TEXT] for k, v in pairs if is_bad_text(k) or is_bad_text(v)}
    if errors:
        raise ma.ValidationError(errors)


def _refuse_nul_in_path(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """No object has a NUL in its id: such a path is a 404, never a database error."""
    if values and any(isinstance(v, str) and is_bad_text(v) for v in values.values()):
        raise NotFound()


_BODY_HEADERS = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})  # the two without HTTP_ in WSGI


def _refuse_nul_in_headers() -> None:
    """HTTP forbids NUL in a header value; some servers pass it on, so refuse it here. (The
    WSGI environ is read directly: werkzeug's header view renamed every header to check it.)"""
    for key, value in flask.request.environ.items():
        if (
            type(value) is str
            and "\x00" in value
            and (key.startswith("HTTP_") or key in _BODY_HEADERS)
        ):
            name = key.removeprefix("HTTP_").replace("_", "-").title()
            raise BadRequest(_l("The header %(name)s is not valid.", name=_printable(name)))


def init_app(app: Flask) -> None:
    """Read every request through the checks above."""
    app.request_class = Request
    app.json = JSONProvider(app)
    app.url_value_preprocessor(_refuse_nul_in_path)
    app.before_request(_refuse_nul_in_headers)
