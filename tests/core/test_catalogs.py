"""No English leaking into a Korean or Chinese answer: every message id written in the code
(``_``, ``_l``, ``N_``) has a reviewed translation in the ``ko`` and ``zh`` catalogs.

The ids are extracted from the source tree at test time, exactly as ``make messages`` does, so a
module that adds ``_l("...")`` without translating it fails here, as does an entry left fuzzy
or empty, or one whose ``%(name)s`` placeholders differ from its id's.
"""

import ast
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from marshmallow import validate

import app as application
from core.config import BASE_DIR
from core.errors import DomainError
from core.i18n import EXTRACT_KEYWORDS, catalog_paths

TRANSLATED = ("ko", "zh")  # English is the message id itself
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def message_ids(root: Path) -> dict[str, str]:
    """Every message id under ``root`` (as ``make messages`` finds them), with where it is."""
    with (BASE_DIR / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    keywords = {**DEFAULT_KEYWORDS, **dict.fromkeys(EXTRACT_KEYWORDS)}
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        root, method_map, options_map, keywords=keywords
    ):
        for text in message if isinstance(message, tuple) else (message,):
            if text:
                found.setdefault(text, f"{filename}:{lineno}")
    return found


def load_catalog(locale: str) -> Catalog:
    po, _ = catalog_paths(locale)
    with po.open("rb") as source:
        return read_po(source, locale=locale)


def untranslated(ids: dict[str, str], catalog: Catalog) -> list[str]:
    """What a reader of ``catalog`` would see in English (or with broken placeholders)."""
    problems = []
    for message_id, where in sorted(ids.items()):
        entry = catalog.get(message_id)
        translation = str(entry.string) if entry is not None and entry.string else ""
        if entry is None or not translation:
            problems.append(f"{where}: no translation of {message_id!r}")
        elif entry.fuzzy:
            problems.append(f"{where}: fuzzy translation of {message_id!r} (review it)")
        elif sorted(PLACEHOLDER.findall(translation)) != sorted(PLACEHOLDER.findall(message_id)):
            problems.append(f"{where}: placeholders differ in {translation!r}")
        elif translation == message_id and re.search("[A-Za-z]{3}", message_id):
            problems.append(f"{where}: {message_id!r} is left in English")
    return problems


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_message_id_in_the_code_has_a_reviewed_translation(locale):
    ids = message_ids(BASE_DIR)
    assert len(ids) > 50  # the extraction itself works
    problems = untranslated(ids, load_catalog(locale))
    assert problems == [], (
        f"{len(problems)} message(s) not translated into {locale}: run `make messages`, "
        "translate them in core/translations/<locale>/LC_MESSAGES/messages.po, then "
        "`make compile-messages`.\n" + "\n".join(problems)
    )


def test_a_new_message_without_translation_is_caught(tmp_path):
    (tmp_path / "module.py").write_text(
        "from core.i18n import _l, _\n"
        'ERROR = _l("A brand new message %(name)s.", name="x")\n'
        'NOW = _("No such payment.")\n'
    )
    ids = message_ids(tmp_path)
    assert set(ids) == {"A brand new message %(name)s.", "No such payment."}
    problems = untranslated(ids, load_catalog("ko"))
    assert len(problems) == 1 and "A brand new message" in problems[0]


def test_a_fuzzy_an_empty_an_english_or_a_misplaced_entry_is_caught():
    catalog = Catalog(locale="ko")
    catalog.add("Fuzzy one.", "흐릿한", flags=["fuzzy"])
    catalog.add("Empty one.", "")
    catalog.add("English one.", "English one.")
    catalog.add("Amount is %(amount)s.", "금액은 %(money)s입니다.")
    catalog.add("Good one.", "좋습니다.")
    ids = {m: "x.py:1" for m in ("Fuzzy one.", "Empty one.", "English one.", "Good one.")}
    ids["Amount is %(amount)s."] = "x.py:2"
    problems = untranslated(ids, catalog)
    assert len(problems) == 4 and not any("Good one." in p for p in problems)


# --- messages the extraction cannot see --------------------------------------------------------

MARKERS = {"_", "_l", "N_", "gettext", "lazy_gettext"}
VALIDATORS = {
    name
    for name, cls in vars(validate).items()
    if isinstance(cls, type) and issubclass(cls, validate.Validator)
}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else ""


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def _domain_errors() -> set[str]:
    assert application.MODULES  # importing the app imported every module and its errors
    found, todo = set(), [DomainError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found | {"ValidationError"}  # marshmallow's, raised in schemas


def hidden_messages(root: Path, errors: set[str]) -> list[str]:
    """English that reaches people without a message id pybabel can extract: an error raised
    with a plain or f-string, ``error="..."`` on a validator, ``_l(f"...")`` or ``_l(name)``."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] in {".venv", "tests", "migrations", "devtools", "bench"}:
            continue
        if relative == Path("core/i18n.py"):  # the machinery translates ids it is given
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            where = f"{relative}:{node.lineno}"
            name = _name(node.func)
            if name in MARKERS and (not node.args or not _is_text(node.args[0])):
                problems.append(f"{where}: {name}() needs a literal message id")
            elif name in MARKERS and isinstance(node.args[0], ast.JoinedStr):
                problems.append(f"{where}: {name}(f'...') cannot be translated; use %(name)s")
            elif name in errors and node.args and _is_text(node.args[0]):
                problems.append(f"{where}: {name}('...') without _l()")
            problems += [
                f"{where}: {name}(error='...') without _l()"
                for keyword in node.keywords
                if name in VALIDATORS and keyword.arg == "error" and _is_text(keyword.value)
            ]
    return problems


def test_no_message_reaches_people_without_a_message_id():
    assert hidden_messages(BASE_DIR, _domain_errors()) == []


def test_an_error_raised_with_plain_english_is_caught(tmp_path):
    (tmp_path / "civic").mkdir()
    (tmp_path / "civic" / "service.py").write_text(
        "raise NotFound('No such service.')\n"
        "raise Conflict(f'Slot {slot} is taken.')\n"
        "raise InvalidInput(_l(f'Fee {fee} is wrong.'))\n"
        "FIELD = String(validate=Length(max=5, error='Too long.'))\n"
        "raise NotFound(_l('No such service.'))\n"
    )
    problems = hidden_messages(tmp_path, {"NotFound", "Conflict", "InvalidInput"})
    lines = [problem.split(": ", 1)[0] for problem in problems]
    assert lines == [f"civic/service.py:{n}" for n in (1, 2, 3, 4)]
