"""The message catalog: every message of the code has a current Spanish entry, and the language follows gettext."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog

from labkit.content.catalog import (
    SOURCES,
    STUBS,
    language_problems,
    problems,
    read_catalog,
    template,
    updated,
    write_catalog,
)
from labkit.core.overlay import WORKBOOK_ROOT
from minituner import i18n
from minituner.i18n import catalog_path, language, tr


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "en"),
        ({"LANG": "es_ES.UTF-8"}, "es"),
        ({"LANG": "es_MX"}, "es"),
        ({"LANG": "fr_FR.UTF-8"}, "en"),
        ({"LANGUAGE": "es:en", "LANG": "en_US.UTF-8"}, "es"),  # LANGUAGE comes first
        ({"LANGUAGE": "fr:es"}, "es"),  # the first language of the list that the workbook has
        ({"LC_ALL": "C", "LANG": "es_ES.UTF-8"}, "en"),  # LC_ALL before LANG; C is untranslated
        ({"LC_MESSAGES": "es_ES.UTF-8", "LANG": "en_GB.UTF-8"}, "es"),
        ({"LANGUAGE": "", "LANG": "es_ES.UTF-8"}, "es"),  # an empty variable does not count
    ],
)
def test_language_follows_gettexts_rule(environ: dict[str, str], expected: str) -> None:
    assert language(environ) == expected


def test_every_message_has_a_current_spanish_entry() -> None:
    found = language_problems()
    assert found and all(not lines for lines in found.values()), (
        "the catalog is behind the code (python -m labkit.content.catalog --update, then translate):\n"
        + "\n".join(f"{lang}: {line}" for lang, lines in found.items() for line in lines)
    )


def test_catalog_file_is_as_update_writes_it(tmp_path: Path) -> None:
    # Hand edits that --update would undo (an obsolete entry kept, another layout) are caught here.
    path = catalog_path("es")
    rewritten = tmp_path / "es.po"
    write_catalog(updated(template(), read_catalog(path, "es")), rewritten)
    assert rewritten.read_bytes() == path.read_bytes(), "run python -m labkit.content.catalog --update"


def test_problems_name_each_kind_of_gap() -> None:
    current = Catalog(locale="es")
    for message in ("new {x}", "untranslated", "changed", "fields {count}", "fine {x}"):
        current.add(message, locations=[("tests/t.py", 1)])
    translated = Catalog(locale="es")
    translated.add("untranslated", "")
    translated.add("changed", "cambiado", flags=["fuzzy"])
    translated.add("fields {count}", "campos {cuenta}")
    translated.add("fine {x}", "bien {x}")
    translated.add("gone", "ido")
    found = problems(current, translated)
    assert len(found) == 5, found
    for part in ("'new {x}': not in the catalog", "'untranslated': not translated", "'changed': fuzzy",
                 "'fields {count}': the translation's fields ['cuenta']", "'gone': no longer in the code"):  # fmt: skip
        assert any(part in line for line in found), (part, found)


def test_a_new_message_comes_in_untranslated_and_a_changed_one_fuzzy(tmp_path: Path) -> None:
    known = Catalog(locale="es")
    known.add("Block A: old text", "Bloque A: texto viejo")
    current = Catalog(locale="es")
    current.add("Block A: old text!", locations=[(STUBS, 1)])
    current.add("brand new", locations=[(STUBS, 2)])
    merged = updated(current, known)
    assert merged["brand new"] is not None and not merged["brand new"].string
    changed = merged["Block A: old text!"]
    assert changed is not None and changed.fuzzy and changed.string == "Bloque A: texto viejo"
    assert merged.get("Block A: old text") is None


def test_messages_are_literal_strings() -> None:
    # gettext looks a message up by its text: an f-string, or text built before the lookup, is never in
    # the catalog. So _(), tr() and the grader's said() take a literal, or a constant marked with N_("...")
    # where it is defined.
    for path in SOURCES:
        tree = ast.parse((WORKBOOK_ROOT / path).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            position = {"_": 0, "N_": 0, "tr": 1, "said": 0}.get(node.func.id)
            if position is None:
                continue
            message = node.args[position] if len(node.args) > position else None
            literal = isinstance(message, ast.Constant) and isinstance(message.value, str)
            marked = node.func.id != "N_" and isinstance(message, (ast.Name, ast.Attribute, ast.Subscript))
            assert literal or marked, f"{path}:{node.lineno}: {node.func.id}() needs a literal string, then .format(...)"


def test_stubs_speak_the_students_language() -> None:
    # A plain pytest on the stubs: the first failure is the stub's NotImplementedError, in LANG's language.
    stub_text = "Block A: LoRALinear.__init__ is not implemented yet"
    assert tr("es", stub_text) != stub_text
    for lang_env, expected in (("es_ES.UTF-8", tr("es", stub_text)), ("en_US.UTF-8", stub_text)):
        env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES")}
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "tests", "-x", "-q", "-p", "no:cacheprovider", "-k", "lora_init_identity"],
            cwd=WORKBOOK_ROOT, env={**env, "LANG": lang_env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert f"NotImplementedError: {expected}" in run.stdout, run.stdout[-3000:]


def test_translations_leave_fuzzy_entries_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fuzzy entry (the translation of an older English) is never shown: the English is.
    catalog = Catalog(locale="es")
    catalog.add("checked", "comprobado")
    catalog.add("stale", "viejo", flags=["fuzzy"])
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    write_catalog(catalog, i18n.catalog_path("es"))
    i18n.translations.cache_clear()
    try:
        assert (tr("es", "checked"), tr("es", "stale"), tr("en", "checked")) == ("comprobado", "stale", "checked")
    finally:
        i18n.translations.cache_clear()
