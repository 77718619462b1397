"""The bilingual site's sources: staging, English/Spanish parity and the translation drift gate.

Every page exists twice, ``page.md`` in English and ``page.es.md`` in Spanish (notebooks likewise,
``name.ipynb`` and ``name.es.ipynb``). Two checks keep the pair in step:

- parity: the same heading structure, the same code blocks (code identical), the same display
  formulas, the same links and images, in the same order (a Spanish page links the Spanish twin
  ``x.es.md`` where the English page links ``x.md``); for notebooks the same cells, code identical;
- links: every page links other pages where they live in the repository (``../labs/x.md``, not
  the site's staged copy ``lab/x.md``), and a Spanish page links the Spanish twin of a page that
  has one, so that both read right on GitHub; mkdocs-static-i18n resolves ``x.es.md`` to the
  Spanish page, and the staging rewrites the paths for the site;
- drift: a Spanish page records in its front matter (``translation_of``) the hash of the English
  page it translates; when the English page changes, the check names the page until a translator
  updates the Spanish one and records the new hash with ``python -m labkit.content.site translated PAGE``.

    python -m labkit.content.site check               # parity + drift, exit status 1 on any problem
    python -m labkit.content.site translated PAGE...  # record the English hash in PAGE's Spanish twin
"""

from __future__ import annotations

import argparse
import hashlib
import json
import posixpath
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# Pages that live outside docs/ and where the site shows them: {source dir: staged dir}. Only the
# pages of a source dir (STAGED_SUFFIXES, not its subdirectories) are staged: src/minituner gives
# the site its BLUEPRINT.md pair, not lora.py.
STAGED = {"labs": "docs/lab", "solutions": "docs/solutions", "src/minituner": "docs/design"}
STAGED_SUFFIXES = (".md", ".ipynb")
# Source trees whose pages must come in English/Spanish pairs.
PAGE_TREES = ("docs", "labs", "solutions", "src/minituner")
HASH_KEY = "translation_of"

# A relative link target in Markdown, up to its #anchor: ](target) or ](target#anchor).
_RELATIVE_LINK = re.compile(r"(\]\()([^)\s#:<>]+)(?=[)#\s])")


def site_location(repo_path: str) -> str | None:
    """Where the repository file ``repo_path`` is on the site (a path under docs/), or None."""
    for source_dir, target_dir in STAGED.items():
        if repo_path.startswith(source_dir + "/"):
            return target_dir + repo_path[len(source_dir) :]
    return repo_path if repo_path.startswith("docs/") else None


def site_links(text: str, repo_dir: str, site_dir: str) -> str:
    """``text``'s relative links, written for a page in ``repo_dir``, for its copy in ``site_dir``.

    Both are directories relative to the repository root. A link to a page that the site shows
    elsewhere (``../docs/theory/x.md`` from ``labs/``, ``../../labs/x.md`` from ``src/minituner/``,
    ``../../src/minituner/BLUEPRINT.md`` from ``docs/instructors/``) is pointed at that place; a
    link that already works on the site, or leads to a file the site does not show, is left as it is.
    """

    def rewrite(match: re.Match[str]) -> str:
        target = match.group(2)
        if target.startswith("/"):
            return match.group(0)
        on_site = site_location(posixpath.normpath(posixpath.join(repo_dir, target)))
        # Where the link leads on the site as written, within docs/ (a path above it leads nowhere).
        as_written = posixpath.normpath(posixpath.join(posixpath.relpath(site_dir, "docs"), target))
        if on_site is None or "docs/" + as_written == on_site:
            return match.group(0)
        return match.group(1) + posixpath.relpath(on_site, site_dir)

    return _RELATIVE_LINK.sub(rewrite, text)


def stage_external_pages(root: Path = ROOT) -> list[Path]:
    """Mirror the site pages of the ``STAGED`` source directories into their ``docs/`` directories.

    Links written for the repository (``../docs/theory/...``, ``../labs/...``) are rewritten for
    the site (``../theory/...``, ``../lab/...``) by ``site_links``. A file is rewritten only when
    its content changes; staged files whose source is gone are removed. Returns the staged files.
    """
    staged: list[Path] = []
    for source_dir, target_dir in STAGED.items():
        target = root / target_dir
        target.mkdir(parents=True, exist_ok=True)
        wanted = {}
        present = (root / source_dir).is_dir()  # the student edition has no solutions/
        for source in sorted((root / source_dir).iterdir()) if present else []:
            if source.suffix in STAGED_SUFFIXES and source.is_file():
                data = source.read_bytes()
                if source.suffix == ".md":
                    text = site_links(data.decode("utf-8"), source_dir, target_dir)
                    data = text.encode("utf-8")
                wanted[source.name] = data
        for old in target.iterdir():
            if old.name not in wanted:
                old.unlink() if old.is_file() else shutil.rmtree(old)
        for name, data in wanted.items():
            path = target / name
            if not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)
            staged.append(path)
    return staged


# ----------------------------------------------------------------------------------------------
# Pairs


@dataclass(frozen=True)
class Pair:
    english: Path
    spanish: Path


def _is_spanish(path: Path) -> bool:
    return path.suffixes[-2:-1] == [".es"]


def _twin(path: Path) -> Path:
    """``page.md`` <-> ``page.es.md``."""
    if _is_spanish(path):
        return path.with_name(path.name.replace(".es" + path.suffix, path.suffix))
    return path.with_name(path.stem + ".es" + path.suffix)


def site_sources(root: Path = ROOT) -> list[Path]:
    """Every page source of the site (not the staged copies)."""
    staged = {root / d for d in STAGED.values()}
    found: list[Path] = []
    for tree in PAGE_TREES:
        for path in sorted((root / tree).rglob("*")):
            if path.suffix in STAGED_SUFFIXES and not any(s in path.parents for s in staged):
                found.append(path)
    return found


def pairs_and_orphans(root: Path = ROOT) -> tuple[list[Pair], list[str]]:
    sources = set(site_sources(root))
    pairs, orphans = [], []
    for path in sorted(sources):
        twin = _twin(path)
        if twin not in sources:
            missing = "Spanish twin" if not _is_spanish(path) else "English original"
            orphans.append(f"{path.relative_to(root)}: no {missing} ({twin.name})")
        elif not _is_spanish(path):
            pairs.append(Pair(path, twin))
    return pairs, orphans


# ----------------------------------------------------------------------------------------------
# Markdown structure


@dataclass(frozen=True)
class Structure:
    headings: list[int]  # levels, in order
    code: list[str]  # fenced blocks, info string and body
    math: list[str]  # display formulas
    links: list[str]  # link targets
    images: list[str]  # image sources


_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_LINK = re.compile(r"(!?)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Return the ``key: value`` pairs of a leading ``---`` block, and the rest of the text."""
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---\n", 4)
    if end < 0:
        return {}, text
    meta = {}
    for line in text[4:end].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip()] = value.strip().strip("\"'")
    return meta, text[end + 5 :]


def markdown_structure(text: str) -> Structure:
    _, body = split_front_matter(text)
    headings: list[int] = []
    code: list[str] = []
    prose: list[str] = []
    fence: str | None = None
    block: list[str] = []
    for line in body.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            fence, block = match.group(2), [line.strip()]
        elif fence is not None:
            block.append(line)
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                code.append("\n".join(block))
                fence = None
        else:
            prose.append(line)
            heading = re.match(r"^(#{1,6})\s", line)
            if heading:
                headings.append(len(heading.group(1)))
    text_only = _INLINE_CODE.sub("", "\n".join(prose))
    links: list[str] = []
    images: list[str] = []
    for bang, target in _LINK.findall(text_only):
        (images if bang else links).append(target)
    math = [m.strip() for m in _DISPLAY_MATH.findall(text_only)]
    return Structure(headings, code, math, links, images)


def _notebook_structure(path: Path, lang: str) -> list[tuple[str, str]]:
    """Each cell's type, and a code cell's source as it is in both languages: comments out, the
    language the generator filled in put back as its token (labkit.content.notebooks.localized)."""
    from labkit.content.notebooks import LANGUAGE_TOKEN, code_comments  # nbformat: only for notebooks

    def code(source: str) -> str:
        lines = source.split("\n")
        for row, column, _ in code_comments(source):
            lines[row - 1] = lines[row - 1][:column].rstrip()
        return "\n".join(lines).replace(f'"{lang}"', LANGUAGE_TOKEN)

    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(c["cell_type"], code("".join(c["source"])) if c["cell_type"] == "code" else "") for c in cells]


_SPANISH_SUFFIX = re.compile(r"\.es(?=\.(?:md|ipynb)$)")


def english_target(target: str) -> str:
    """A link target with a Spanish twin's name put back to the English page's: x.es.md#a -> x.md#a."""
    path, sep, anchor = target.partition("#")
    return _SPANISH_SUFFIX.sub("", path) + sep + anchor


def _repository_source(site_path: str) -> str | None:
    """The repository file that the staged copy ``site_path`` (docs/lab/x.md, ...) is made from."""
    for source_dir, target_dir in STAGED.items():
        if site_path.startswith(target_dir + "/"):
            return source_dir + site_path[len(target_dir) :]
    return None


def repository_target(page: Path, target: str, root: Path = ROOT) -> str | None:
    """How ``page`` should write the link ``target`` to read right in the repository, or None if it
    does: the page where it lives rather than the site's staged copy of it (``../labs/x.md``, not
    ``lab/x.md``), and, on a Spanish page, the Spanish twin of a page that has one."""
    path, sep, anchor = target.partition("#")
    if not path or path.startswith("/") or ":" in path:
        return None  # an anchor on the page itself, an absolute path or a URL
    page_dir = posixpath.dirname(page.relative_to(root).as_posix())
    repo_path = posixpath.normpath(posixpath.join(page_dir, path))
    repo_path = _repository_source(repo_path) or repo_path
    if _is_spanish(page) and repo_path.endswith(STAGED_SUFFIXES) and not _is_spanish(Path(repo_path)):
        twin = _twin(root / repo_path)
        if twin.is_file():
            repo_path = twin.relative_to(root).as_posix()
    better = posixpath.relpath(repo_path, page_dir or ".") + sep + anchor
    return None if better == target else better


def link_problems(page: Path, root: Path = ROOT) -> list[str]:
    """The links of ``page`` that do not read right in the repository (see repository_target)."""
    name = page.relative_to(root).as_posix()
    problems = []
    for target in markdown_structure(page.read_text(encoding="utf-8")).links:
        better = repository_target(page, target, root)
        if better is not None:
            problems.append(f"{name}: the link {target} does not lead to the right page in the repository; "
                            f"link {better}")
    return problems


def parity_problems(pair: Pair, root: Path = ROOT) -> list[str]:
    name = pair.english.relative_to(root)
    if pair.english.suffix == ".ipynb":
        en, es = _notebook_structure(pair.english, "en"), _notebook_structure(pair.spanish, "es")
        if [t for t, _ in en] != [t for t, _ in es]:
            return [f"{name}: the Spanish notebook's cells differ in number or type"]
        return [f"{name}: code cell {i} differs in Spanish" for i, (a, b) in enumerate(zip(en, es, strict=True)) if a != b]
    en_s = markdown_structure(pair.english.read_text(encoding="utf-8"))
    es_s = markdown_structure(pair.spanish.read_text(encoding="utf-8"))
    problems = []
    for part in ("headings", "code", "math", "links", "images"):
        a, b = getattr(en_s, part), getattr(es_s, part)
        if part == "links":  # the Spanish page links the Spanish twins: compare the English names
            b = [english_target(target) for target in b]
        if a != b:
            detail = next((f"#{i}: {x!r} vs {y!r}" for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), "")
            problems.append(f"{name}: {part} differ (English {len(a)}, Spanish {len(b)}) {detail}".rstrip())
    return problems


# ----------------------------------------------------------------------------------------------
# Drift


def text_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def english_hash(path: Path) -> str:
    return text_hash(path.read_bytes())


def drift_problems(pair: Pair, root: Path = ROOT) -> list[str]:
    if pair.english.suffix != ".md":
        return []  # notebooks are built from one bilingual source, both languages at once
    meta, _ = split_front_matter(pair.spanish.read_text(encoding="utf-8"))
    recorded, current = meta.get(HASH_KEY), english_hash(pair.english)
    name = pair.english.relative_to(root)
    if recorded is None:
        return [f"{name}: its Spanish twin records no '{HASH_KEY}' hash"]
    if recorded != current:
        return [
            f"{name} changed since its Spanish twin was translated ({recorded} -> {current}): update "
            f"{pair.spanish.relative_to(root)}, then run: python -m labkit.content.site translated {name}"
        ]
    return []


def with_translation_hash(spanish_text: str, digest: str) -> str:
    """The Spanish page's text with ``translation_of: digest`` in its front matter."""
    line = f"{HASH_KEY}: {digest}"
    if spanish_text.startswith("---\n") and "\n---\n" in spanish_text[3:]:
        head, rest = spanish_text[4:].split("\n---\n", 1)
        kept = [ln for ln in head.splitlines() if not ln.startswith(HASH_KEY + ":")]
        return "---\n" + "\n".join([*kept, line]) + "\n---\n" + rest
    return f"---\n{line}\n---\n\n{spanish_text}"


def record_translation(english: Path) -> Path:
    spanish = _twin(english)
    text = spanish.read_text(encoding="utf-8")
    spanish.write_text(with_translation_hash(text, english_hash(english)), encoding="utf-8")
    return spanish


def site_problems(root: Path = ROOT) -> list[str]:
    pairs, problems = pairs_and_orphans(root)
    for pair in pairs:
        problems += parity_problems(pair, root) + drift_problems(pair, root)
        for page in (pair.english, pair.spanish):
            if page.suffix == ".md":
                problems += link_problems(page, root)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.content.site", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="bilingual parity and translation drift of every page")
    done = sub.add_parser("translated", help="record that PAGE's Spanish twin translates its current text")
    done.add_argument("pages", nargs="+", type=Path, metavar="PAGE", help="an English page, e.g. docs/index.md")
    args = parser.parse_args(argv)
    if args.command == "translated":
        for page in args.pages:
            if _is_spanish(page) or page.suffix != ".md" or not page.is_file():
                parser.error(f"PAGE must be an existing English .md page, got {page}")
            print(f"recorded {english_hash(page)} in {record_translation(page)}")
        return 0
    problems = site_problems()
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s) in {len(pairs_and_orphans()[0])} page pairs")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
