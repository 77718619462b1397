"""The bug zoo: buggy variants of the reference lora.py, each with one classic mistake.

Each variant lives in tools/zoo/bugs.toml as a list of exact text edits to solutions/lora.py, so
it stays one mistake away from the reference and breaks loudly if the reference changes under it.
Every variant is run through the overlay mechanism, exactly as a student's submission would be;
it must fail at least one graded test, and the messages of its failures must mention its keyword
(proof that the feedback points at the actual mistake).

    python -m labkit.zoo               run the zoo and print which tests catch each variant
    python -m labkit.zoo --write       ... and regenerate the instructors' tables in docs/
    python -m labkit.zoo -k scaling    only the variants whose id contains "scaling"
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from labkit.overlay import WORKBOOK_ROOT, OverlayRun, run_overlay
from labkit.site import text_hash, with_translation_hash
from labkit.tomlread import read_toml
from labkit.verify import REFERENCE

ZOO_FILE = WORKBOOK_ROOT / "tools" / "zoo" / "bugs.toml"
TABLE_PATHS = {
    "en": WORKBOOK_ROOT / "docs" / "instructors" / "bug-zoo.md",
    "es": WORKBOOK_ROOT / "docs" / "instructors" / "bug-zoo.es.md",
}


class ZooError(Exception):
    """The zoo file is malformed, or a variant's edit no longer applies to the reference."""


@dataclass(frozen=True)
class Bug:
    """One classic mistake: id, block (A-E), description (en, es), keyword, text edits.

    withheld: the mistake also breaks the lab's code rule (labkit.rules), so grading withholds it.
    """

    id: str
    block: str
    mistake: str
    mistake_es: str
    keyword: str
    edits: tuple[tuple[str, str], ...]
    withheld: bool = False

    def apply(self, reference: str) -> str:
        """The reference source with this bug's edits applied; each must match exactly once."""
        source = reference
        for old, new in self.edits:
            count = source.count(old)
            if count != 1:
                raise ZooError(f"{self.id}: edit target found {count} times (needs 1):\n{old}")
            source = source.replace(old, new)
        return source


@dataclass(frozen=True)
class ZooResult:
    bug: Bug
    run: OverlayRun

    @property
    def caught_by(self) -> list[str]:
        return [o.name for o in self.run.not_passed]

    @property
    def failure_text(self) -> str:
        """What the student reads: the exception types and messages of the failing tests."""
        return "\n".join(f"{o.exc_type}: {o.message}" for o in self.run.not_passed)


def load_bugs(path: Path = ZOO_FILE) -> list[Bug]:
    data = read_toml(path)
    bugs = []
    for entry in data.get("bug", []):
        try:
            edits = tuple((e["old"], e["new"]) for e in entry["edit"])
            bug = Bug(entry["id"], entry["block"], entry["mistake"], entry["mistake_es"],
                      entry["keyword"], edits, bool(entry.get("withheld", False)))  # fmt: skip
        except KeyError as exc:
            raise ZooError(f"{path}: bug {entry.get('id', '?')} lacks {exc}") from exc
        if not edits:
            raise ZooError(f"{path}: bug {bug.id} has no edit")
        bugs.append(bug)
    ids = Counter(b.id for b in bugs)
    if duplicated := [i for i, n in ids.items() if n > 1]:
        raise ZooError(f"{path}: duplicated ids {duplicated}")
    return bugs


def run_zoo(bugs: Sequence[Bug], jobs: int = 2) -> list[ZooResult]:
    """Run every variant through the overlay, jobs at a time; results in the order of bugs."""
    reference = REFERENCE.read_text(encoding="utf-8")
    sources = [bug.apply(reference) for bug in bugs]  # fail fast on a stale edit
    with tempfile.TemporaryDirectory(prefix="labkit-zoo-") as tmp:
        paths = []
        for bug, source in zip(bugs, sources):
            path = Path(tmp) / f"{bug.id}.py"
            path.write_text(source, encoding="utf-8")
            paths.append(path)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            runs = list(pool.map(run_overlay, paths))
    return [ZooResult(bug, run) for bug, run in zip(bugs, runs)]


def zoo_problems(results: Iterable[ZooResult]) -> list[str]:
    """Variants that survive the graded suite, or whose feedback misses their keyword."""
    problems = []
    for result in results:
        bug = result.bug
        if not result.run.outcomes:
            problems.append(f"{bug.id}: no graded test ran:\n{result.run.output[-2000:]}")
        elif not result.caught_by:
            problems.append(f"{bug.id}: survives the graded suite ({bug.mistake})")
        elif bug.keyword.lower() not in result.failure_text.lower():
            problems.append(
                f"{bug.id}: no failure message mentions {bug.keyword!r}; they say:\n"
                + result.failure_text[:1500]
            )
    return problems


def _catching_tests(result: ZooResult) -> str:
    """Catching tests with parametrizations folded: "test_x (3), test_y"."""
    counts = Counter(name.partition("[")[0] for name in result.caught_by)
    return ", ".join(f"`{n}` ({c})" if c > 1 else f"`{n}`" for n, c in counts.items())


_TABLE_TEXT = {
    "en": (
        "# Which test catches which mistake\n\n"
        "Generated by `python -m labkit.zoo --write` from a run of every variant of the bug zoo "
        "(`tools/zoo/bugs.toml`) through the grading overlay; do not edit by hand. Each variant is "
        "the reference solution with one classic mistake. The keyword is a word that the failing "
        "tests' messages must contain, so that the feedback names the mistake.\n\n"
        "{count} variants, all caught.\n\n"
        "| variant | block | mistake | keyword | caught by |\n|---|---|---|---|---|\n"
    ),
    "es": (
        "# Qué test detecta cada error\n\n"
        "Generado por `python -m labkit.zoo --write` a partir de una ejecución de cada variante del "
        "zoológico de errores (`tools/zoo/bugs.toml`) a través del mecanismo de corrección; no se "
        "edita a mano. Cada variante es la solución de referencia con un error clásico. La palabra "
        "clave debe aparecer en los mensajes de los tests que fallan, para que la retroalimentación "
        "nombre el error.\n\n"
        "{count} variantes, todas detectadas.\n\n"
        "| variante | bloque | error | palabra clave | detectada por |\n|---|---|---|---|---|\n"
    ),
}


def render_table(results: Sequence[ZooResult], lang: str) -> str:
    rows = []
    for result in results:
        bug = result.bug
        mistake = bug.mistake if lang == "en" else bug.mistake_es
        rows.append(
            f"| `{bug.id}` | {bug.block} | {mistake} | `{bug.keyword}` | {_catching_tests(result)} |"
        )
    table = _TABLE_TEXT[lang].format(count=len(results)) + "\n".join(rows) + "\n"
    if lang == "en":
        return table
    # Generated in both languages at once, so the Spanish table always translates the current English
    # one: record that for the site's drift gate.
    return with_translation_hash(table, text_hash(render_table(results, "en").encode("utf-8")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.zoo", description=__doc__.split("\n")[0])
    parser.add_argument("-k", default="", help="only variants whose id contains this text")
    parser.add_argument("--jobs", type=int, default=2, help="variants run at once (default 2)")
    parser.add_argument("--write", action="store_true", help="regenerate the docs tables")
    args = parser.parse_args(argv)

    bugs = [b for b in load_bugs() if args.k in b.id]
    results = run_zoo(bugs, jobs=args.jobs)
    for result in results:
        caught = len(result.caught_by)
        print(f"{result.bug.id:32} caught by {caught:3} tests: {_catching_tests(result)}")
    problems = zoo_problems(results)
    for problem in problems:
        print(f"PROBLEM {problem}")
    if args.write and not args.k:
        for lang, path in TABLE_PATHS.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_table(results, lang), encoding="utf-8")
            print(f"wrote {path.relative_to(WORKBOOK_ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
