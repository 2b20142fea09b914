"""Every user-facing message in templates and code has a French translation with the same placeholders."""

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

pytestmark = pytest.mark.requirement("BILINGUAL")

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None, "ngettext": (1, 2)}
METHOD_MAP = [("proapp/**.py", "python"), ("templates/**.html", "jinja2")]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def extracted_messages() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(str(ROOT), METHOD_MAP, keywords=KEYWORDS):
        found.add(message if isinstance(message, str) else message[0])
    return found


def french_catalog():
    with (ROOT / "translations/fr/LC_MESSAGES/messages.po").open("rb") as fh:
        return read_po(fh)


def test_every_message_has_a_french_translation():
    catalog = french_catalog()
    messages = extracted_messages()
    assert len(messages) > 20
    missing = sorted(m for m in messages if not (catalog.get(m) and catalog.get(m).string))
    assert missing == [], "no French for: " + "; ".join(missing)
    fuzzy = sorted(m for m in messages if catalog.get(m) and catalog.get(m).fuzzy)
    assert fuzzy == [], "fuzzy French for: " + "; ".join(fuzzy)


def test_french_translations_keep_the_placeholders():
    for message in french_catalog():
        if message.id and isinstance(message.id, str) and message.string:
            assert sorted(PLACEHOLDER.findall(message.id)) == sorted(PLACEHOLDER.findall(message.string)), message.id


def test_no_message_is_built_at_run_time():
    """f-strings or concatenation inside _() cannot be translated."""
    pattern = re.compile(r"""\b(?:_|_l|gettext|lazy_gettext)\(\s*(?:f["']|["'][^"']*["']\s*\+)""")
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "proapp").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
