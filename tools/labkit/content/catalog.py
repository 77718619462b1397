"""The message catalog (minituner.i18n): what the code says, and whether Spanish says all of it.

    python -m labkit.content.catalog            # what the Spanish catalog lacks; exit 1 if anything
    python -m labkit.content.catalog --update   # take in new and changed messages, drop the gone ones

Messages are found with Babel's extractor: the `_("...")`, `tr(lang, "...")`, `N_("...")` and
`said("...", **fields)` calls of SOURCES; the `say("...")` calls and the comments of the notebooks' code cells (tools/notebooks: the
Spanish notebooks print and comment in Spanish, labkit.content.notebooks.localized); and the texts the
stubs raise NotImplementedError with (conftest.py shows those translated). --update
merges them into src/minituner/locale/es/LC_MESSAGES/minituner.po as gettext's msgmerge does: a new
message comes in untranslated, a changed one keeps its old translation marked fuzzy (not used until
someone checks it), a gone one is dropped. Then write the Spanish of every new or fuzzy entry, and
remove its fuzzy flag. A translator comment goes on the line before the call, as `# i18n: ...`.
"""

from __future__ import annotations

import argparse
import ast
import io
import string
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast

from babel.messages.catalog import Catalog
from babel.messages.extract import extract, extract_from_file
from babel.messages.pofile import read_po, write_po

from labkit.content.notebooks import Code, code_comments, load_sources
from labkit.core.overlay import WORKBOOK_ROOT
from minituner.i18n import DOMAIN, LANGUAGES, catalog_path

#: The files whose messages are in the catalog, relative to the workbook.
SOURCES = (
    "conftest.py", "tests/test_minituner.py", "tests/scenarios.py",
    "tools/labkit/core/cli.py", "tools/labkit/core/nextsteps.py",
    "tools/labkit/grading/check.py", "tools/labkit/grading/grader.py", "tools/labkit/grading/feedback.py",
    "tools/labkit/grading/points.py",
    "tools/labkit/grading/grade.py", "tools/labkit/grading/judge.py", "tools/labkit/grading/lms.py",
    "tools/labkit/grading/release.py", "tools/labkit/grading/results.py",
    "tools/labkit/grading/rules.py", "tools/labkit/grading/measure.py", "tools/labkit/grading/submission.py",
)
#: The notebooks' sources: what their code cells print with say("..."), and their comments.
NOTEBOOK_KEYWORDS: dict[str, Any] = {"say": None}
#: The stubs, whose NotImplementedError texts are messages too.
STUBS = "src/minituner/lora.py"
#: _(message), tr(lang, message), N_(message) (a message defined in one place, translated in another)
#: and the grader's said(message, **fields) (labkit.grading.submission: a message in every language).
KEYWORDS: dict[str, Any] = {"_": None, "tr": (2,), "N_": None, "said": None}
COMMENT_TAG = "i18n:"
#: Lines of the catalog: long messages are wrapped, as msgmerge does, for readable diffs.
WIDTH = 100


def stub_messages(fileobj: IO[bytes], keywords: object, comment_tags: object, options: object) -> Iterator[
        tuple[int, str, str, list[str]]]:  # fmt: skip
    """Babel extraction method: the literal text of every `raise NotImplementedError("...")`, in file order."""
    found: list[tuple[int, str, str, list[str]]] = []
    for node in ast.walk(ast.parse(fileobj.read())):
        if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
            continue
        call = node.exc
        if isinstance(call.func, ast.Name) and call.func.id == "NotImplementedError" and call.args:
            text = call.args[0]
            if isinstance(text, ast.Constant) and isinstance(text.value, str):
                found.append((node.lineno, "NotImplementedError", text.value, []))
    yield from sorted(found)


def template(root: Path = WORKBOOK_ROOT) -> Catalog:
    """Every message of the sources under root, with where it is used and its translator comments."""
    catalog = Catalog(domain=DOMAIN, project="minituner", fuzzy=False)
    for path in SOURCES:
        for lineno, message, comments, _context in extract_from_file(
            "python", root / path, keywords=KEYWORDS, comment_tags=(COMMENT_TAG,), strip_comment_tags=True,
        ):  # fmt: skip
            catalog.add(message, locations=[(path, lineno)], auto_comments=comments)
    for source in load_sources(root / "tools" / "notebooks"):
        where = f"labs/{source.name}.ipynb"
        for cell in source.cells:
            if isinstance(cell, Code):
                for _lineno, message, comments, _context in extract(
                    "python", io.BytesIO(cell.source.encode()), keywords=NOTEBOOK_KEYWORDS,
                ):  # fmt: skip
                    catalog.add(message, locations=[(where, 0)], auto_comments=comments)
                for _row, _column, comment in code_comments(cell.source):
                    catalog.add(comment, locations=[(where, 0)], auto_comments=["a comment in a code cell"])
    stub_keywords = {"NotImplementedError": None}
    for lineno, message, comments, _context in extract_from_file(
            cast(Any, stub_messages), root / STUBS, keywords=stub_keywords):  # Babel types a method's results as its own:
        catalog.add(message, locations=[(STUBS, lineno)], auto_comments=comments)
    return catalog


def read_catalog(path: Path, lang: str) -> Catalog:
    with path.open("rb") as po:
        return read_po(po, locale=lang, domain=DOMAIN)


def write_catalog(catalog: Catalog, path: Path) -> None:
    """The catalog as a .po file, locations without line numbers (an edit elsewhere changes nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as po:
        write_po(po, catalog, width=WIDTH, include_lineno=False, omit_header=False, ignore_obsolete=True)


def fields(text: str) -> set[str]:
    """The str.format fields of text: {what}, {count:g} ... (by name)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def problems(current: Catalog, translated: Catalog) -> list[str]:
    """What translated (a language's catalog) lacks against current (the template): one line each."""
    found = []
    for message in current:
        if not message.id:
            continue
        entry = translated.get(message.id)
        where = ", ".join(path for path, _ in message.locations)
        label = f"{where}: {str(message.id)[:70]!r}"
        if entry is None:
            found.append(f"{label}: not in the catalog (run --update)")
        elif not entry.string:
            found.append(f"{label}: not translated")
        elif entry.fuzzy:
            found.append(f"{label}: fuzzy (the English changed; check the translation, then remove the flag)")
        elif fields(str(entry.string)) != fields(str(message.id)):
            found.append(f"{label}: the translation's fields {sorted(fields(str(entry.string)))} are not "
                         f"the message's {sorted(fields(str(message.id)))}")  # fmt: skip
    found += [f"{str(entry.id)[:70]!r}: no longer in the code (run --update)"
              for entry in translated if entry.id and current.get(entry.id) is None]  # fmt: skip
    return found


def updated(current: Catalog, translated: Catalog) -> Catalog:
    """translated merged with current, as msgmerge does (new: untranslated; changed: fuzzy; gone: dropped)."""
    translated.update(current, update_creation_date=False)
    translated.obsolete.clear()
    return translated


def new_catalog(lang: str) -> Catalog:
    """An empty catalog for lang, with the workbook's header."""
    catalog = Catalog(locale=lang, domain=DOMAIN, project="minituner", version="0", fuzzy=False,
                      copyright_holder="the minituner maintainers", msgid_bugs_address="the workbook's issues",
                      last_translator="the minituner maintainers", language_team=lang)  # fmt: skip
    catalog.header_comment = f"# The workbook's messages in {lang} (minituner.i18n; see labkit.content.catalog)."
    return catalog


def language_problems(root: Path = WORKBOOK_ROOT) -> Mapping[str, list[str]]:
    """problems() of every translated language's catalog, by language."""
    current = template(root)
    return {lang: problems(current, read_catalog(catalog_path(lang), lang)) for lang in LANGUAGES if lang != "en"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.content.catalog", description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="merge the code's messages into each catalog")
    args = parser.parse_args(argv)
    if args.update:
        current = template()
        for lang in LANGUAGES[1:]:
            path = catalog_path(lang)
            known = read_catalog(path, lang) if path.exists() else new_catalog(lang)
            write_catalog(updated(current, known), path)
    status = 0
    for lang, found in language_problems().items():
        for line in found:
            print(f"{lang}: {line}")
        status = status or bool(found)
    return int(status)


if __name__ == "__main__":
    raise SystemExit(main())
