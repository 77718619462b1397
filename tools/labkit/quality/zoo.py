"""The bug zoo: buggy variants of the reference lora.py, each with one classic mistake.

Each variant lives in tools/zoo/bugs.toml as a list of exact text edits to solutions/lora.py, so
it stays one mistake away from the reference and breaks loudly if the reference changes under it.
Every variant is run through the overlay mechanism, exactly as a student's submission would be;
it must fail at least one graded test, and the failure that `check` shows first (first_shown) must
mention its keyword: proof that the first feedback a student reads points at the actual mistake.
A variant may also name tests that must catch it in every case, each with its own keyword (also).

    python -m labkit.quality.zoo               run the zoo (and the correct alternatives, which must pass)
    python -m labkit.quality.zoo --write       ... and regenerate the instructors' tables in docs/
    python -m labkit.quality.zoo -k scaling    only the variants whose id contains "scaling"
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from labkit.content.site import text_hash, with_translation_hash
from labkit.core.edits import apply_edits
from labkit.core.labinfo import load_lab
from labkit.core.overlay import (
    REFERENCE,
    WORKBOOK_ROOT,
    OverlayRun,
    TestOutcome,
    run_overlay,
)
from labkit.core.tomlread import read_toml

ZOO_FILE = WORKBOOK_ROOT / "tools" / "zoo" / "bugs.toml"
TABLE_PATHS = {
    "en": WORKBOOK_ROOT / "docs" / "instructors" / "bug-zoo.md",
    "es": WORKBOOK_ROOT / "docs" / "instructors" / "bug-zoo.es.md",
}


#: How much of the first failure's message `check` shows.
SHOWN_CHARS = 1500


class ZooError(Exception):
    """The zoo file is malformed (an edit that no longer applies raises labkit.core.edits.EditError)."""


@dataclass(frozen=True)
class Bug:
    """One classic mistake: id, block (A-E), description (en, es), keyword, text edits.

    withheld: the mistake also breaks the lab's code rule (labkit.grading.rules), so grading withholds it.
    also: (test name, keyword) pairs: every case of that test must fail, its message holding keyword
    (for a test that the first-shown failure hides, but which must catch the mistake too).
    """

    id: str
    block: str
    mistake: str
    mistake_es: str
    keyword: str
    edits: tuple[tuple[str, str], ...]
    withheld: bool = False
    also: tuple[tuple[str, str], ...] = ()

    def apply(self, reference: str) -> str:
        """The reference source with this bug's edits applied; each must match exactly once (else EditError)."""
        return apply_edits(self.id, self.edits, reference)


@dataclass(frozen=True)
class Alternative:
    """A correct variation of the reference that the lab allows (description en, es; text edits).

    It must pass every graded test: proof that the tests do not demand the reference's own choices.
    """

    id: str
    description: str
    description_es: str
    edits: tuple[tuple[str, str], ...]

    def apply(self, reference: str) -> str:
        return apply_edits(self.id, self.edits, reference)


@dataclass(frozen=True)
class ZooResult:
    bug: Bug
    run: OverlayRun

    @property
    def caught_by(self) -> list[str]:
        return [o.name for o in self.run.not_passed]

    @property
    def first(self) -> TestOutcome | None:
        """The failure the student reads first (see first_shown)."""
        return first_shown(self.run)


@cache
def _lab_markers() -> tuple[str, ...]:
    return tuple(block.marker for block in load_lab().blocks)


def first_shown(run: OverlayRun, markers: Sequence[str] | None = None) -> TestOutcome | None:
    """The one failure `check` shows for this run, or None when every block is done.

    Mirrors check's choice (labkit.grading.check.render over labkit.grading.grader's blocks): blocks in lab order
    (markers, default from labs/lab.toml); among those with a failure, the first that is not "not
    started" (every failure a NotImplementedError, nothing passed), else the first of them; in it,
    the first failure in collection order (run.outcomes are in collection order).
    """
    if markers is None:
        markers = _lab_markers()
    for started_only in (True, False):
        for marker in markers:
            mine = [o for o in run.outcomes if o.blocks and o.blocks[0] == marker]
            failures = [o for o in mine if o.outcome != "passed"]
            not_started = len(failures) == len(mine) and all(
                o.exc_type == "NotImplementedError" for o in failures
            )
            if failures and not (started_only and not_started):
                return failures[0]
    return None


def load_bugs(path: Path = ZOO_FILE) -> list[Bug]:
    data = read_toml(path)
    bugs = []
    for entry in data.get("bug", []):
        try:
            edits = tuple((e["old"], e["new"]) for e in entry["edit"])
            also = tuple((a["test"], a["keyword"]) for a in entry.get("also", []))
            bug = Bug(entry["id"], entry["block"], entry["mistake"], entry["mistake_es"],
                      entry["keyword"], edits, bool(entry.get("withheld", False)), also)  # fmt: skip
        except KeyError as exc:
            raise ZooError(f"{path}: bug {entry.get('id', '?')} lacks {exc}") from exc
        if not edits:
            raise ZooError(f"{path}: bug {bug.id} has no edit")
        bugs.append(bug)
    ids = Counter(b.id for b in bugs)
    if duplicated := [i for i, n in ids.items() if n > 1]:
        raise ZooError(f"{path}: duplicated ids {duplicated}")
    return bugs


def load_alternatives(path: Path = ZOO_FILE) -> list[Alternative]:
    """The [[alternative]] entries of the zoo file: correct variations that must pass every test."""
    alternatives = []
    for entry in read_toml(path).get("alternative", []):
        try:
            edits = tuple((e["old"], e["new"]) for e in entry["edit"])
            alternatives.append(Alternative(entry["id"], entry["description"], entry["description_es"], edits))
        except KeyError as exc:
            raise ZooError(f"{path}: alternative {entry.get('id', '?')} lacks {exc}") from exc
    return alternatives


def run_alternatives(alternatives: Sequence[Alternative], jobs: int = 2) -> dict[str, list[str]]:
    """For each alternative, the graded tests it does not pass (an empty list when it passes all)."""
    return {alt.id: _not_passed(run) for alt, run in zip(alternatives, _run_sources(alternatives, jobs), strict=True)}


def _not_passed(run: OverlayRun) -> list[str]:
    if not run.outcomes:
        return [f"no graded test ran: {run.output[-500:]}"]
    return [o.name for o in run.not_passed]


def run_zoo(bugs: Sequence[Bug], jobs: int = 2) -> list[ZooResult]:
    """Run every variant through the overlay, jobs at a time; results in the order of bugs."""
    return [ZooResult(bug, run) for bug, run in zip(bugs, _run_sources(bugs, jobs), strict=True)]


def _run_sources(variants: Sequence[Bug | Alternative], jobs: int) -> list[OverlayRun]:
    """Each variant of the reference through the overlay, jobs at a time, in order."""
    reference = REFERENCE.read_text(encoding="utf-8")
    sources = [variant.apply(reference) for variant in variants]  # fail fast on a stale edit
    with tempfile.TemporaryDirectory(prefix="labkit-zoo-") as tmp:
        paths = []
        for variant, source in zip(variants, sources, strict=True):
            path = Path(tmp) / f"{variant.id}.py"
            path.write_text(source, encoding="utf-8")
            paths.append(path)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            return list(pool.map(run_overlay, paths))


def zoo_problems(results: Iterable[ZooResult]) -> list[str]:
    """Variants that survive the graded suite, or whose first-shown failure misses their keyword.

    Also those that a test named in their `also` does not catch in every case, with its keyword.
    """
    problems = []
    for result in results:
        bug = result.bug
        first = result.first
        if not result.run.outcomes:
            problems.append(f"{bug.id}: no graded test ran:\n{result.run.output[-2000:]}")
        elif not result.caught_by:
            problems.append(f"{bug.id}: survives the graded suite ({bug.mistake})")
        elif first is None:
            problems.append(f"{bug.id}: no block shows a failure; failing: {result.caught_by}")
        elif bug.keyword.lower() not in first.message.strip()[:SHOWN_CHARS].lower():
            problems.append(
                f"{bug.id}: the first failure shown, {first.name}, does not mention {bug.keyword!r}; "
                f"it says:\n{first.exc_type}: {first.message[:1500]}"
            )
        for test, keyword in bug.also:
            cases = [o for o in result.run.outcomes if o.name.partition("[")[0] == test]
            missed = [o.name for o in cases if o.outcome == "passed" or keyword.lower() not in o.message.lower()]
            if not cases or missed:
                problems.append(f"{bug.id}: {test} must fail in every case naming {keyword!r}; "
                                f"it does not in {missed or 'any case (not collected)'}")  # fmt: skip
    return problems


def _catching_tests(result: ZooResult) -> str:
    """Catching tests with parametrizations folded: "test_x (3), test_y"."""
    counts = Counter(name.partition("[")[0] for name in result.caught_by)
    return ", ".join(f"`{n}` ({c})" if c > 1 else f"`{n}`" for n, c in counts.items())


_TABLE_TEXT = {
    "en": (
        "# Which test catches which mistake\n\n"
        "Generated by `python -m labkit.quality.zoo --write` from a run of every variant of the bug zoo "
        "(`tools/zoo/bugs.toml`) through the grading overlay; do not edit by hand. Each variant is "
        "the reference solution with one classic mistake. The keyword is a word that the message of "
        "the first failure shown (the one `check` shows a student) must contain, so that the first "
        "feedback names the mistake.\n\n"
        "{count} variants, all caught.\n\n"
        "| variant | block | mistake | keyword | first failure shown | caught by |\n"
        "|---|---|---|---|---|---|\n"
    ),
    "es": (
        "# Qué test detecta cada error\n\n"
        "Generado por `python -m labkit.quality.zoo --write` a partir de una ejecución de cada variante del "
        "zoológico de errores (`tools/zoo/bugs.toml`) por la superposición del corrector; no se "
        "edita a mano. Cada variante es la solución de referencia con un error clásico. La palabra "
        "clave debe aparecer en el mensaje del primer fallo mostrado (el que `check` muestra al "
        "estudiante), para que la primera retroalimentación nombre el error.\n\n"
        "{count} variantes, todas detectadas.\n\n"
        "| variante | bloque | error | palabra clave | primer fallo mostrado | detectada por |\n"
        "|---|---|---|---|---|---|\n"
    ),
}


_ALTERNATIVES_TEXT = {
    "en": (
        "\n## Correct alternatives\n\n"
        "Choices the lab allows that the reference does not make, each an edit of the reference in "
        "`tools/zoo/bugs.toml` (`[[alternative]]`); the maintainers' tests require each to pass every "
        "graded test.\n\n"
        "| alternative | what it changes |\n|---|---|\n"
    ),
    "es": (
        "\n## Alternativas correctas\n\n"
        "Decisiones que el laboratorio permite y la referencia no toma, cada una como una edición de la "
        "referencia en `tools/zoo/bugs.toml` (`[[alternative]]`); los tests de mantenimiento exigen que "
        "cada una pase todos los tests evaluables.\n\n"
        "| alternativa | qué cambia |\n|---|---|\n"
    ),
}


def render_table(results: Sequence[ZooResult], lang: str) -> str:
    rows = []
    for result in results:
        bug = result.bug
        mistake = bug.mistake if lang == "en" else bug.mistake_es
        first = f"`{result.first.name}`" if result.first else ""
        rows.append(
            f"| `{bug.id}` | {bug.block} | {mistake} | `{bug.keyword}` | {first} | {_catching_tests(result)} |"
        )
    table = _TABLE_TEXT[lang].format(count=len(results)) + "\n".join(rows) + "\n"
    alternatives = load_alternatives()
    if alternatives:
        table += _ALTERNATIVES_TEXT[lang] + "".join(
            f"| `{alt.id}` | {alt.description if lang == 'en' else alt.description_es} |\n" for alt in alternatives
        )
    if lang == "en":
        return table
    # Generated in both languages at once, so the Spanish table always translates the current English
    # one: record that for the site's drift gate.
    return with_translation_hash(table, text_hash(render_table(results, "en").encode("utf-8")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.quality.zoo", description=__doc__.split("\n")[0])
    parser.add_argument("-k", default="", help="only variants whose id contains this text")
    parser.add_argument("--jobs", type=int, default=2, help="variants run at once (default 2)")
    parser.add_argument("--write", action="store_true", help="regenerate the docs tables")
    args = parser.parse_args(argv)

    bugs = [b for b in load_bugs() if args.k in b.id]
    results = run_zoo(bugs, jobs=args.jobs)
    for result in results:
        caught = len(result.caught_by)
        first = result.first.name if result.first else "-"
        print(f"{result.bug.id:32} caught by {caught:3} tests, first shown {first}: {_catching_tests(result)}")
    problems = zoo_problems(results)
    alternatives = [a for a in load_alternatives() if args.k in a.id]
    for alt_id, failing in run_alternatives(alternatives, jobs=args.jobs).items():
        print(f"{alt_id:32} (a correct alternative) fails {len(failing)} tests")
        if failing:
            problems.append(f"{alt_id}: a correct alternative fails {failing[:5]}")
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
