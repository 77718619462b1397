"""`release DIR`: write the student edition of the workbook, a fresh git repository of one commit.

    release DIR [--force]

The edition is what students clone: the stubs, the graded tests and their conftest, the lab, its
theory and notebooks, BLUEPRINT, `check`, the bootstrap and the site, without anything that gives
the reference solution away (no solutions/, no bug zoo or example edits, no instructor pages). What
it takes and how it differs from the workbook is data, tools/release/edition.toml: tracked paths in
and out, files of its own (its README), and exact edits of the pages that point at what it leaves
out. It is generated, never edited by hand; before it is committed, leaks() checks that no line of
the reference (beyond ordinary PyTorch idioms) and no link to what was left out is in it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labkit.core import cli
from labkit.core.edits import EditError, apply_edits
from labkit.core.overlay import REFERENCE, STUBS, WORKBOOK_ROOT
from labkit.core.tomlread import read_toml
from minituner.i18n import tr

EDITION_FILE = WORKBOOK_ROOT / "tools" / "release" / "edition.toml"
#: A link (Markdown inline or reference, or HTML) whose target names a folder the edition leaves out.
LEFT_OUT_LINK = re.compile(r"""(?:\]\(|\]:\s*|href=["'])[^)\s"']*\b(?:solutions|instructors)\b""")


class ReleaseError(Exception):
    """The edition cannot be written as asked: a target in the way, an edit gone stale, a leak (said in the lang asked)."""


@dataclass(frozen=True)
class Edition:
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    files: dict[str, str]  # path in the edition -> path in the workbook
    edits: dict[str, list[tuple[str, str]]]  # path -> (old, new), in order
    min_length: int
    common: frozenset[str]


def load_edition(path: Path = EDITION_FILE) -> Edition:
    data = read_toml(path)
    edits: dict[str, list[tuple[str, str]]] = {}
    for edit in data.get("edit", []):
        edits.setdefault(edit["file"], []).append((edit["old"], edit["new"]))
    leak = data["leak"]
    return Edition(tuple(data["include"]), tuple(data["exclude"]), dict(data.get("files", {})), edits,
                   int(leak["min_length"]), frozenset(leak["common"]))  # fmt: skip


def tracked_files(root: Path = WORKBOOK_ROOT, *, committed: bool = True) -> dict[str, bytes]:
    """The workbook's tracked files by path, links left out: as committed (HEAD), or as they are now.

    A release takes them as committed, so that an uncommitted edit (the reference copied over the
    stubs to try `check`, say) can never reach the students. The Classroom workflow's digests are
    generated from the files as they are, to be committed with them.
    """
    listing = subprocess.run(["git", "ls-tree", "-r", "-z", "HEAD"], cwd=root, capture_output=True, check=True).stdout
    files = {}
    for entry in filter(None, listing.decode("utf-8").split("\0")):
        meta, path = entry.split("\t", 1)
        mode, kind, _ = meta.split()
        if kind != "blob" or mode == "120000":
            continue
        if committed:
            files[path] = committed_file(path, root)
        elif (root / path).is_file() and not (root / path).is_symlink():
            files[path] = (root / path).read_bytes()
    return files


def committed_file(path: str, root: Path = WORKBOOK_ROOT) -> bytes:
    """path as committed (HEAD)."""
    return subprocess.run(["git", "show", f"HEAD:{path}"], cwd=root, capture_output=True, check=True).stdout


def under(path: str, prefixes: Sequence[str]) -> bool:
    """Whether path is one of prefixes or lies in one of them (paths relative to the workbook, "/"-separated)."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def edition_files(edition: Edition, root: Path = WORKBOOK_ROOT, *, committed: bool = True,
                  lang: str = "en") -> dict[str, bytes]:  # fmt: skip
    """Every file of the edition, by its path in it, with its content as committed or as it is (edits applied)."""
    committed_files = tracked_files(root, committed=committed)
    files = {p: data for p, data in committed_files.items() if under(p, edition.include) and not under(p, edition.exclude)}
    files.update({target: committed_files[source] for target, source in edition.files.items()})
    for path, edits in edition.edits.items():
        if path not in files:
            raise ReleaseError(tr(lang, "{file}: an edit of {path}, which the edition does not hold").format(
                file=EDITION_FILE.name, path=path))  # fmt: skip
        try:
            files[path] = apply_edits(path, edits, files[path].decode("utf-8")).encode("utf-8")
        except EditError as exc:
            raise ReleaseError(f"{EDITION_FILE.name}: {exc}") from None
    return files


def secret_lines(edition: Edition, reference: Path = REFERENCE, stubs: Path = STUBS) -> frozenset[str]:
    """The reference's lines that give it away: not in the stubs, not a common idiom, long enough to mean something.

    Both as committed: a working copy with the reference over the stubs would leave nothing secret.
    """
    def lines(path: Path) -> list[str]:
        return committed_file(path.relative_to(WORKBOOK_ROOT).as_posix()).decode("utf-8").splitlines()

    given = {line.strip() for line in lines(stubs)}
    return frozenset(
        line.strip()
        for line in lines(reference)
        if len(line.strip()) >= edition.min_length and line.strip() not in given | edition.common
    )


def _lines(path: str, text: str) -> list[str]:
    """The lines a reader sees: a notebook's cell sources and text outputs, line by line; any other file's lines."""
    if not path.endswith(".ipynb"):
        return text.splitlines()
    try:
        cells = json.loads(text).get("cells", [])
    except (ValueError, AttributeError):
        return text.splitlines()
    parts: list[str] = []
    for cell in cells:
        for chunk in [cell.get("source", ""), *(o.get("text", "") for o in cell.get("outputs", []))]:
            parts += ("".join(chunk) if isinstance(chunk, list) else str(chunk)).splitlines()
    return parts


def leaks(files: dict[str, bytes], secret: frozenset[str], lang: str = "en") -> list[str]:
    """Where the edition would give the reference away (in lang): its lines, or links to what it leaves out."""
    found = []
    for path, data in sorted(files.items()):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # images: no code in them
        for number, line in enumerate(_lines(path, text), 1):
            if line.strip() in secret:
                found.append(tr(lang, "{file}:{line}: a line of the reference: {text}").format(
                    file=path, line=number, text=line.strip()))  # fmt: skip
            if path.endswith((".md", ".ipynb")) and LEFT_OUT_LINK.search(line):
                found.append(tr(lang, "{file}:{line}: a link to a page the edition leaves out").format(
                    file=path, line=number))  # fmt: skip
    return found


def _check_target(target: Path, force: bool, lang: str) -> None:
    """Refuse a target that is, holds or sits in the workbook, that is not a folder, or that is not empty (unless force)."""
    resolved = target.resolve()
    if resolved == WORKBOOK_ROOT or WORKBOOK_ROOT.is_relative_to(resolved) or resolved.is_relative_to(WORKBOOK_ROOT):
        raise ReleaseError(tr(lang, "{folder} is the workbook, holds it or lies inside it: choose a folder outside it")
                           .format(folder=target))  # fmt: skip
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ReleaseError(tr(lang, "{folder} is not a folder").format(folder=target))
    if target.exists() and any(target.iterdir()) and not force:
        raise ReleaseError(tr(lang, "{folder} is not empty; choose a new folder, or --force to replace what is there")
                           .format(folder=target))  # fmt: skip


def release(target: Path, *, force: bool = False, edition: Edition | None = None, lang: str = "en") -> int:
    """Write the edition into target as a new git repository with one commit; the number of files.

    A ReleaseError says why not in lang; the commit's message is in English, as the workbook's are.
    """
    edition = edition or load_edition()
    files = edition_files(edition, lang=lang)
    found = leaks(files, secret_lines(edition), lang)
    if found:
        raise ReleaseError(tr(lang, "the edition would give the reference away:") + "\n" + "\n".join(found))
    _check_target(target, force, lang)
    if target.exists():
        shutil.rmtree(target)
    for path, data in files.items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_bytes(data)
        if path.endswith(".sh"):
            (target / path).chmod(0o755)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=WORKBOOK_ROOT, capture_output=True, text=True)
    git = ["git", "-c", "user.name=minituner release", "-c", "user.email=release@minituner.invalid", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=target, check=True)
    subprocess.run([*git, "add", "-A"], cwd=target, check=True)
    message = f"Lab 00, student edition (from the workbook at {commit.stdout.strip() or 'an unknown commit'})"
    subprocess.run([*git, "commit", "-q", "-m", message], cwd=target, check=True)
    return len(files)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    lang = cli.language_of(argv)
    description = tr(lang, "Write the student edition of the workbook, a fresh git repository of one commit.")
    parser = cli.parser("release", description, lang)
    parser.add_argument("target", type=Path, metavar="DIR",
                        help=tr(lang, "where the edition goes (a new or empty folder)"))  # fmt: skip
    parser.add_argument("--force", action="store_true", help=tr(lang, "replace what DIR holds"))
    args = parser.parse_args(argv)
    try:
        count = release(args.target, force=args.force, lang=lang)
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 2
    print(tr(lang, "wrote the student edition ({count} files, one commit) to {folder}").format(
        count=count, folder=args.target))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
