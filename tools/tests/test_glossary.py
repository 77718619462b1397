"""One Spanish term per English term: every Spanish text of the workbook against its glossary.

tools/i18n/glossary.toml names, for each English term, the Spanish term the workbook uses and the
variants it does not (regular expressions). These tests gather every Spanish text a student or an
instructor reads:

- the Spanish pages, every ``*.es.md`` of the repository (the staged copies under docs/lab and
  docs/solutions, and build output, left out);
- the ``es`` strings of the notebook sources (``md(en=..., es=...)`` in tools/notebooks), from which
  the ``*.es.ipynb`` notebooks are built;
- the ``es`` strings of labs/lab.toml and the ``mistake_es`` strings of tools/zoo/bugs.toml;
- the Spanish messages of tools/labkit and of the graded tests: strings under an ``"es"`` dictionary
  key or passed as an ``es=`` keyword argument;
- the Spanish labels of mkdocs.yml (the Spanish site name and navigation);
- the Spanish messages of the gettext catalogs (every ``msgstr`` of ``src/minituner/locale/es``).

Fenced code blocks, inline code, formulas, link targets, HTML comments, front matter and ``{...}``
placeholders are blanked before matching, so identifiers stay English; a glossary entry with
``code = true`` (the grammatical gender of an identifier) also sees inline code. A failure names
file:line, the variant found and the glossary's term.
"""

from __future__ import annotations

import ast
import functools
import io
import os
import re
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from labkit.core.tomlread import read_toml

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "tools" / "i18n" / "glossary.toml"
#: Directories never scanned: environments, build output, and the site's staged copies of labs/,
#: solutions/ and src/minituner/ (their sources are scanned).
SKIPPED_DIRS = (".venv", "venv", "site", "build", "dist", "node_modules", "docs/lab", "docs/solutions", "docs/design")
#: Python files whose Spanish strings are shown to people: tool messages, notebook sources, tests.
PYTHON_SOURCES = ("tools/labkit/**/*.py", "tools/notebooks/*.py", "tests/*.py")
#: TOML files with Spanish strings, under keys named ``es`` or ending in ``_es``.
TOML_SOURCES = ("labs/lab.toml", "tools/zoo/bugs.toml")
MKDOCS = ROOT / "mkdocs.yml"
#: The gettext catalogs whose translations are Spanish (minituner.i18n).
CATALOGS = ("src/minituner/locale/es/LC_MESSAGES/*.po",)


# ----------------------------------------------------------------------------------------------
# The glossary


@dataclass(frozen=True)
class Term:
    """One glossary entry: the English term, its Spanish term and the variants not to use."""

    en: str
    es: str
    wrong: tuple[re.Pattern[str], ...]
    code: bool = False  # the patterns also see inline code
    note: str = ""


def load_glossary(path: Path = GLOSSARY) -> list[Term]:
    """The glossary's entries, their patterns compiled case-insensitively (re.error names the entry)."""
    data = read_toml(path)
    terms = []
    for entry in data["term"]:
        patterns = []
        for source in entry["wrong"]:
            try:
                patterns.append(re.compile(source, re.IGNORECASE))
            except re.error as error:
                raise ValueError(f"{path.name}: term {entry['en']!r}: bad pattern {source!r}: {error}") from error
        terms.append(Term(entry["en"], entry["es"], tuple(patterns), bool(entry.get("code", False)), entry.get("note", "")))
    return terms


# ----------------------------------------------------------------------------------------------
# Spanish texts, each character with its line in the source file


@dataclass(frozen=True)
class Text:
    """A Spanish text taken from path; lines[i] is the line of path on which text[i] stands."""

    path: Path
    text: str
    lines: tuple[int, ...]

    @staticmethod
    def at(path: Path, text: str, first_line: int) -> Text:
        """A text that starts on first_line and keeps the source's line breaks."""
        lines, line = [], first_line
        for char in text:
            lines.append(line)
            line += char == "\n"
        return Text(path, text, tuple(lines))


def _blank(match: re.Match[str]) -> str:
    """The match with every character but line breaks turned into a space (positions are kept)."""
    return re.sub(r"[^\n]", " ", match.group(0))


_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.DOTALL)
_INLINE_MATH = re.compile(r"\$[^$\n]+\$")
_LINK_TARGET = re.compile(r"(?<=\])\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_PLACEHOLDER = re.compile(r"\{[^{}\n]*\}")
_INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)


def _without_fences(text: str) -> str:
    """text with every fenced code block (fence lines included) blanked."""
    out, fence = [], ""
    for line in text.splitlines(keepends=True):
        match = _FENCE.match(line)
        if fence:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = ""
            out.append(re.sub(r"[^\n]", " ", line))
        elif match:
            fence = match.group(1)
            out.append(re.sub(r"[^\n]", " ", line))
        else:
            out.append(line)
    return "".join(out)


def prose(text: str, keep_inline_code: bool = False) -> str:
    """text as prose only, of the same length: code, formulas, link targets, comments and
    placeholders blanked (inline code kept when keep_inline_code, backticks included)."""
    text = _FRONT_MATTER.sub(_blank, text)
    text = _without_fences(text)
    for pattern in (_COMMENT, _DISPLAY_MATH, _INLINE_MATH, _LINK_TARGET):
        text = pattern.sub(_blank, text)
    if not keep_inline_code:
        text = _INLINE_CODE.sub(_blank, text)
    return _PLACEHOLDER.sub(_blank, text)


def spanish_pages(root: Path = ROOT) -> list[Path]:
    """Every ``*.es.md`` page of the repository, outside hidden directories, environments, build
    output and staged copies (which are not walked into at all)."""
    skipped = {root / d for d in SKIPPED_DIRS}
    pages = []
    for directory, subdirs, files in os.walk(root):
        here = Path(directory)
        subdirs[:] = [d for d in subdirs if not d.startswith(".") and here / d not in skipped]
        pages += [here / name for name in files if name.endswith(".es.md")]
    return sorted(pages)


def page_texts(path: Path) -> Iterator[Text]:
    """The whole page, one text."""
    yield Text.at(path, path.read_text(encoding="utf-8"), 1)


def _string_token_text(token: str) -> str:
    """The value of one Python string token; an f-string's replacement fields are kept as text."""
    prefix = re.match(r"[A-Za-z]*", token).group(0)  # type: ignore[union-attr]
    value = ast.literal_eval(prefix.replace("f", "").replace("F", "") + token[len(prefix) :])
    assert isinstance(value, str), token
    return value


@functools.cache
def _parsed(path: Path) -> tuple[str, ast.Module]:
    """path's source and its syntax tree, read once."""
    source = path.read_text(encoding="utf-8")
    return source, ast.parse(source)


def bilingual_functions(paths: Iterable[Path]) -> dict[str, int]:
    """Functions that take a Spanish text as a parameter named ``es`` (the notebooks' ``md(en, es)``),
    by name, with that parameter's position."""
    found = {}
    for path in paths:
        for node in ast.walk(_parsed(path)[1]):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in [*node.args.posonlyargs, *node.args.args]]
                if "es" in names:
                    found[node.name] = names.index("es")
    return found


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _spanish_nodes(tree: ast.AST, bilingual: dict[str, int]) -> Iterator[ast.expr]:
    """The expressions that hold Spanish: values under an "es" dictionary key, ``es=`` arguments,
    and the ``es`` argument of a bilingual function passed by position."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "es":
                    yield value
        elif isinstance(node, ast.keyword) and node.arg == "es":
            yield node.value
        elif isinstance(node, ast.Call) and _called_name(node) in bilingual:
            position = bilingual[_called_name(node)]
            if position < len(node.args) and not isinstance(node.args[position], ast.Starred):
                yield node.args[position]


def _string_nodes(node: ast.expr) -> Iterator[ast.Constant | ast.JoinedStr]:
    """The string literals inside node, dictionary keys excepted (identifiers, not Spanish)."""
    keys = {id(k) for d in ast.walk(node) if isinstance(d, ast.Dict) for k in d.keys if k is not None}
    for sub in ast.walk(node):
        if id(sub) in keys:
            continue
        if isinstance(sub, ast.JoinedStr) or (isinstance(sub, ast.Constant) and isinstance(sub.value, str)):
            yield sub


def python_texts(path: Path, bilingual: dict[str, int] | None = None) -> Iterator[Text]:
    """Each string token of path's Spanish strings, one text each (implicit concatenation split
    into its tokens, so that lines stay exact); a constant's tokens must add up to its value.
    bilingual: as bilingual_functions gives (by default, those of path itself)."""
    source, tree = _parsed(path)
    bilingual = bilingual_functions([path]) if bilingual is None else bilingual
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.STRING]
    seen: set[tuple[int, int]] = set()
    for holder in _spanish_nodes(tree, bilingual):
        for node in _string_nodes(holder):
            start, end = (node.lineno, node.col_offset), (node.end_lineno or node.lineno, node.end_col_offset or 0)
            inside = [t for t in tokens if start <= t.start and t.end <= end and t.start not in seen]
            texts = [Text.at(path, _string_token_text(t.string), t.start[0]) for t in inside]
            if isinstance(node, ast.Constant) and inside:
                assert "".join(t.text for t in texts) == node.value, f"{path}:{node.lineno}: string not read whole"
            elif not inside:  # an f-string that this Python tokenizes in parts (3.12 and later)
                parts = node.values if isinstance(node, ast.JoinedStr) else [node]
                joined = "".join(str(p.value) if isinstance(p, ast.Constant) else "{}" for p in parts)
                texts = [Text.at(path, joined, node.lineno)]
            seen.update(t.start for t in inside)
            yield from texts


_TOML_TOKEN = re.compile(
    r'(?P<comment>\#[^\n]*)'
    r'|(?P<string>"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\')'
    r'|(?P<key>[A-Za-z0-9_.\-]+)\s*=',
    re.DOTALL,
)
_TOML_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", "e": "\x1b", '"': '"', "\\": "\\"}


def _toml_string(raw: str, first_line: int, path: Path) -> Text:
    """Decode one TOML string literal, keeping the source line of every character."""
    triple = raw[:3] in ('"""', "'''")
    quote = 3 if triple else 1
    body, line = raw[quote:-quote], first_line
    chars: list[str] = []
    lines: list[int] = []
    i = 0
    if triple and body.startswith("\n"):  # a newline right after the opening quotes is trimmed
        i, line = 1, line + 1
    literal = raw[0] == "'"
    while i < len(body):
        char = body[i]
        if char == "\\" and not literal:
            nxt = body[i + 1]
            if nxt in " \t\n":  # line-ending backslash: skip all whitespace and line breaks after it
                i += 1
                while i < len(body) and body[i] in " \t\n":
                    line += body[i] == "\n"
                    i += 1
                continue
            if nxt in "uU":
                width = 4 if nxt == "u" else 8
                chars.append(chr(int(body[i + 2 : i + 2 + width], 16)))
                lines.append(line)
                i += 2 + width
                continue
            chars.append(_TOML_ESCAPES[nxt])
            lines.append(line)
            i += 2
            continue
        chars.append(char)
        lines.append(line)
        line += char == "\n"
        i += 1
    return Text(path, "".join(chars), tuple(lines))


def _is_spanish_key(key: str) -> bool:
    last = key.rsplit(".", 1)[-1]
    return last == "es" or last.endswith("_es")


def _toml_spanish_values(data: object) -> list[str]:
    """Every string under a key named ``es`` or ending in ``_es``, as tomllib reads the file."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if _is_spanish_key(key) and isinstance(value, str):
                found.append(value)
            else:
                found += _toml_spanish_values(value)
    elif isinstance(data, list):
        for item in data:
            found += _toml_spanish_values(item)
    return found


def toml_texts(path: Path) -> Iterator[Text]:
    """Each Spanish string of a TOML file (``es = ...``, ``hint.es = ...``, ``mistake_es = ...``).

    The file is scanned for its string literals, each with the key it is assigned to; the strings so
    found must be exactly those tomllib reads under Spanish keys, so nothing is missed.
    """
    source = path.read_text(encoding="utf-8")
    texts, key = [], ""
    for match in _TOML_TOKEN.finditer(source):
        if match.group("key"):
            key = match.group("key")
        elif match.group("string") and _is_spanish_key(key):
            texts.append(_toml_string(match.group("string"), source.count("\n", 0, match.start()) + 1, path))
            key = ""
    expected = _toml_spanish_values(read_toml(path))
    assert sorted(t.text for t in texts) == sorted(expected), f"{path}: the scan of its Spanish strings missed some"
    yield from texts


def mkdocs_texts(path: Path = MKDOCS) -> Iterator[Text]:
    """The Spanish locale's labels in mkdocs.yml: its site_name and nav_translations values."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"\s*- locale: es\s*$", line)), None)
    if start is None:
        return
    indent = len(lines[start]) - len(lines[start].lstrip())
    for number in range(start + 1, len(lines)):
        line = lines[number]
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        match = re.match(r'\s*(?:"[^"]*"|[^:"]+):\s+(.+)$', line)
        if match and not line.strip().startswith(("name:", "build:", "default:", "locale:")):
            yield Text.at(path, match.group(1).strip().strip("\"'"), number + 1)


def catalog_texts(path: Path) -> Iterator[Text]:
    """Each translation (msgstr) of a gettext catalog, at the line of its entry."""
    with path.open("rb") as po:
        catalog = read_po(po)
    for message in catalog:
        if message.id and message.string:
            yield Text.at(path, str(message.string), message.lineno)


@functools.cache
def spanish_texts(root: Path = ROOT) -> tuple[Text, ...]:
    """Every Spanish text of the workbook (see the module's docstring), read once per test run."""
    texts: list[Text] = []
    for page in spanish_pages(root):
        texts += page_texts(page)
    python = [path for pattern in PYTHON_SOURCES for path in sorted(root.glob(pattern))]
    bilingual = bilingual_functions(python)
    for path in python:
        texts += python_texts(path, bilingual)
    for name in TOML_SOURCES:
        texts += toml_texts(root / name)
    texts += mkdocs_texts(root / "mkdocs.yml")
    for pattern in CATALOGS:
        for path in sorted(root.glob(pattern)):
            texts += catalog_texts(path)
    return tuple(texts)


# ----------------------------------------------------------------------------------------------
# The check


@dataclass(frozen=True)
class Finding:
    """A wrong variant found in a Spanish text."""

    path: Path
    line: int
    found: str
    term: Term

    def __str__(self) -> str:
        where = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{where}:{self.line}: {self.found!r}: the glossary's term for {self.term.en!r} is {self.term.es!r}"


def check(texts: Iterable[Text], terms: Iterable[Term]) -> list[Finding]:
    """Every match of a glossary entry's wrong patterns in texts, in file and line order."""
    terms = list(terms)
    findings = []
    for text in texts:
        plain, with_code = prose(text.text), prose(text.text, keep_inline_code=True)
        for term in terms:
            scanned = with_code if term.code else plain
            for pattern in term.wrong:
                for match in pattern.finditer(scanned):
                    findings.append(Finding(text.path, text.lines[match.start()], match.group(0), term))
    return sorted(findings, key=lambda f: (str(f.path), f.line, f.found))


# ----------------------------------------------------------------------------------------------
# Tests


def test_glossary_is_well_formed() -> None:
    """Every entry has its fields, its patterns compile, and none of them flags the entry's own term."""
    terms = load_glossary()
    assert len(terms) >= 15
    assert len({t.en for t in terms}) == len(terms), "an English term appears twice"
    for term in terms:
        assert term.en.strip() and term.es.strip() and term.wrong, term
        own = prose(term.es, keep_inline_code=term.code)
        for pattern in term.wrong:
            assert not pattern.search(own), f"{term.en!r}: pattern {pattern.pattern!r} matches its own term {term.es!r}"


def test_every_kind_of_spanish_text_is_scanned() -> None:
    """The scan reaches each place Spanish lives, and the pages the site pairs with English ones."""
    texts = spanish_texts()
    sources = {t.path.relative_to(ROOT).as_posix() for t in texts}
    for expected in (
        "labs/00-lora-by-hand.es.md", "docs/index.es.md", "solutions/00-lora-by-hand-ref.es.md",
        "docs/instructors/bug-zoo.es.md", "docs/benchmarks/index.es.md",
        "tools/notebooks/block_a.py", "tools/notebooks/block_e.py", "labs/lab.toml", "tools/zoo/bugs.toml",
        "tools/labkit/quality/zoo.py", "tools/labkit/bench/page.py", "mkdocs.yml",
        "src/minituner/locale/es/LC_MESSAGES/minituner.po",
    ):  # fmt: skip
        assert expected in sources, f"no Spanish text found in {expected}"
    assert not any(s.startswith(("docs/lab/", "docs/solutions/", ".venv/")) for s in sources), sources
    notebook_cells = [t for t in texts if t.path.parent.name == "notebooks"]
    assert len(notebook_cells) >= 40, "the notebook sources' Spanish cells were not all found"


def test_spanish_text_follows_the_glossary() -> None:
    """No Spanish text uses a variant the glossary rules out."""
    findings = check(spanish_texts(), load_glossary())
    report = "\n".join(map(str, findings))
    assert not findings, f"{len(findings)} Spanish text(s) break tools/i18n/glossary.toml:\n{report}"


def test_checker_reports_a_seeded_wrong_variant(tmp_path: Path) -> None:
    """The check can fail: wrong variants planted in each kind of source are reported with file and line,
    and the same words in code are not."""
    terms = load_glossary()
    page = tmp_path / "page.es.md"
    page.write_text(
        "---\ntranslation_of: 0\n---\n\n# Título\n\nEsto es sólo un ejemplo.\n\n"
        "```python\nfundir = 1  # sólo en código\n```\n\nEl código `fundir()` no cuenta; fundir sí.\n",
        encoding="utf-8",
    )
    source = tmp_path / "messages.py"
    source.write_text(
        '_TEXT = {\n    "en": {"all": "merge it"},\n    "es": {\n        "all": "hay que "\n'
        '        "fundirlo {lab}",\n    },\n}\nmd(en="x", es="""\nun párrafo\ndel lab\n""")\n'
        'def said(en: str, es: str) -> str: ...\nX = said("only `lab`", "sólo `lab`")\n',
        encoding="utf-8",
    )
    table = tmp_path / "lab.toml"
    table.write_text('[x]\nen = "only"\nes = """uno \\\nsólo"""\nmistake_es = "in situ"\n', encoding="utf-8")
    texts = [*page_texts(page), *python_texts(source), *toml_texts(table)]
    found = [(f.path.name, f.line, f.found.lower(), f.term.en) for f in check(texts, terms)]
    assert found == [
        ("lab.toml", 4, "sólo", "only"),
        ("lab.toml", 5, "in situ", "in place"),
        ("messages.py", 5, "fundirlo", "merge / merged"),
        ("messages.py", 10, "lab", "lab"),
        ("messages.py", 13, "sólo", "only"),
        ("page.es.md", 7, "sólo", "only"),
        ("page.es.md", 13, "fundir", "merge / merged"),
    ], found
    message = str(check(page_texts(page), terms)[0])
    assert message.startswith(f"{page}:7: 'sólo'") and "'solo'" in message, message


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("el Lab 00 y el Lab 01", False),
        ("| lab (2 x 64) | completo |", False),
        ("el lab pide", True),
        ("en el orden de nombre", False),
        ("la orden de parada", True),
        ("una marca de orden de bytes (BOM)", False),
        ("la marca `requires_grad`", True),
        ("un ajuste fino corto", False),
        ("dos productos finos", True),
        ("el método `forward`", False),
        ("el forward de la capa", True),
        ("un `LoRALinear` fusionado", False),
        ("una `LoRALinear` fusionada", True),
        ("las capas `LoRALinear` fusionadas", False),
        ("el cuaderno de prácticas", False),
        ("este cuaderno ejecuta", True),
        ("los tests calificados", True),
        ("el test oficial calificado", True),
        ("una entrega calificada sin el sandbox", False),
    ],
)
def test_patterns_tell_the_term_from_its_neighbours(text: str, flagged: bool) -> None:
    """The patterns that need context (proper names, homonyms, gender) flag only the wrong use."""
    findings = check([Text.at(Path("example.es.md"), text, 1)], load_glossary())
    assert bool(findings) == flagged, (text, [str(f) for f in findings])
