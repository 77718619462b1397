"""The bug zoo: buggy variants of the reference lora.py, each with one classic mistake.

Each variant lives in tools/zoo/bugs.toml as a list of exact text edits to solutions/lora.py, so
it stays one mistake away from the reference and breaks loudly if the reference changes under it.
Every variant is run through the overlay mechanism, exactly as a student's submission would be;
it must fail at least one graded test, and the failure that `check` shows first (first_shown) must
mention its keyword: proof that the first feedback a student reads points at the actual mistake.
A variant may also name tests that must catch it in every case, each with its own keyword (also).
The zoo runs in English and again in Spanish (the language of the tests' messages, minituner.i18n):
the same tests must fail, the same failure must come first, and the Spanish one must be Spanish
(translation_problems).

Each run is also graded as `grade` grades it, without a notes file (labkit.grading.points, and
mypy --strict on the variant): fairness_problems checks the points policy of labs/lab.toml against
the zoo. Every correct alternative (and the reference) gets full marks; every variant gets less than
any of them; a variant that breaks one of the lab's invariants (its `invariant` in bugs.toml) loses
its whole block; every other variant loses at least one rule's points.

    python -m labkit.quality.zoo               run the zoo (and the correct alternatives, which must pass)
    python -m labkit.quality.zoo --write       ... and regenerate the instructors' tables in docs/
    python -m labkit.quality.zoo -k scaling    only the variants whose id contains "scaling"
"""

from __future__ import annotations

import argparse
import string
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from labkit.content.catalog import read_catalog
from labkit.content.site import text_hash, with_translation_hash
from labkit.core.edits import apply_edits
from labkit.core.labinfo import Lab, load_lab
from labkit.core.overlay import (
    REFERENCE,
    WORKBOOK_ROOT,
    OverlayRun,
    TestOutcome,
    run_overlay,
)
from labkit.core.tomlread import read_toml
from labkit.grading.grader import DEFAULT_LIMITS, ItemGrade, MypyCaches, run_mypy, typecheck_item, typing_escapes
from labkit.grading.points import BlockScore, block_rules, cases_of, score_block
from minituner.i18n import catalog_path

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
    invariant: the id of the lab's invariant (labs/lab.toml) that the mistake breaks, if it breaks one.
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
    invariant: str | None = None

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
class Scored:
    """One candidate's run of the graded tests and its type check, scored as `grade` scores them."""

    run: OverlayRun
    typecheck: ItemGrade

    @property
    def failing(self) -> list[str]:
        """The graded tests it does not pass (an empty list when it passes all)."""
        if not self.run.outcomes:
            return [f"no graded test ran: {self.run.output[-500:]}"]
        return [o.name for o in self.run.not_passed]

    def blocks(self, lab: Lab) -> dict[str, BlockScore]:
        """Each block's score, by block id."""
        return {b.id: score_block(b, lab, cases_of(self.run.outcomes, b.marker)) for b in lab.blocks}

    def points(self, lab: Lab) -> float:
        """The grade without a notes file: the blocks and the type check."""
        return round(sum(s.points for s in self.blocks(lab).values()) + self.typecheck.points, 2)


@dataclass(frozen=True)
class ZooResult:
    bug: Bug
    scored: Scored

    @property
    def run(self) -> OverlayRun:
        return self.scored.run

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
    the first failure in the order labkit.grading.points shows them (a broken invariant's test first,
    then collection order: run.outcomes are in collection order).
    """
    lab = load_lab()
    if markers is None:
        markers = _lab_markers()
    for started_only in (True, False):
        for marker in markers:
            mine = [o for o in run.outcomes if o.blocks[:1] == (marker,)]
            failures = [o for o in mine if o.outcome != "passed"]
            not_started = len(failures) == len(mine) and all(
                o.exc_type == "NotImplementedError" for o in failures
            )
            if failures and not (started_only and not_started):
                # In the block, the order the grade shows its failures in (an invariant's first).
                block = next(b for b in lab.blocks if b.marker == marker)
                shown = score_block(block, lab, cases_of(run.outcomes, marker)).shown
                return mine[shown[0]]
    return None


def load_bugs(path: Path = ZOO_FILE) -> list[Bug]:
    data = read_toml(path)
    bugs = []
    for entry in data.get("bug", []):
        try:
            edits = tuple((e["old"], e["new"]) for e in entry["edit"])
            also = tuple((a["test"], a["keyword"]) for a in entry.get("also", []))
            bug = Bug(entry["id"], entry["block"], entry["mistake"], entry["mistake_es"],
                      entry["keyword"], edits, bool(entry.get("withheld", False)), also,
                      entry.get("invariant"))  # fmt: skip
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


#: The shortest run of a catalog message's own words (between its {fields}) that tells its language.
MIN_PIECE = 12


def run_alternatives(alternatives: Sequence[Alternative], jobs: int = 2) -> dict[str, Scored]:
    """The reference ("reference") and each alternative, by id, run and scored."""
    scored = _run_sources([None, *alternatives], jobs)
    return {"reference": scored[0], **{alt.id: s for alt, s in zip(alternatives, scored[1:], strict=True)}}


def run_zoo(bugs: Sequence[Bug], jobs: int = 2) -> list[ZooResult]:
    """Run every variant through the overlay, jobs at a time; results in the order of bugs."""
    return [ZooResult(bug, scored) for bug, scored in zip(bugs, _run_sources(bugs, jobs), strict=True)]


def run_messages(bugs: Sequence[Bug], language: str, jobs: int = 2) -> list[OverlayRun]:
    """Every variant's run of the graded tests with their messages in language (no type check); in the order of bugs."""
    with _variant_files(bugs) as paths, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda path: run_overlay(path, env={"LANGUAGE": language}), paths))


@contextmanager
def _variant_files(variants: Sequence[Bug | Alternative | None]) -> Iterator[list[Path]]:
    """Each variant of the reference (None: the reference itself) as a lora.py of its own, in a temporary folder."""
    reference = REFERENCE.read_text(encoding="utf-8")
    sources = [reference if v is None else v.apply(reference) for v in variants]  # fail fast on a stale edit
    with tempfile.TemporaryDirectory(prefix="labkit-zoo-") as tmp:
        paths = []
        for k, source in enumerate(sources):
            path = Path(tmp) / f"variant-{k}" / "lora.py"
            path.parent.mkdir()
            path.write_text(source, encoding="utf-8")
            paths.append(path)
        yield paths


def _run_sources(variants: Sequence[Bug | Alternative | None], jobs: int) -> list[Scored]:
    """Each variant of the reference (None: the reference itself), jobs at a time, in order: its run
    of the graded tests through the overlay (their messages in English), and mypy --strict on it."""
    lab = load_lab()
    with _variant_files(variants) as paths, tempfile.TemporaryDirectory(prefix="labkit-zoo-mypy-") as tmp:
        caches = MypyCaches(Path(tmp), jobs)

        def run(path: Path) -> Scored:
            overlay = run_overlay(path, env={"LANGUAGE": "en"})
            with caches.held() as cache:
                code, output = run_mypy(path, lab, DEFAULT_LIMITS, cache, sandbox=False)
            any_passed = bool(overlay.passed)
            source = path.read_text(encoding="utf-8")
            return Scored(overlay, typecheck_item(code, output, lab, any_passed, typing_escapes(source)))

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            return list(pool.map(run, paths))


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


def _pieces(text: str) -> set[str]:
    """The runs of text's own words between its {fields}, stripped, of MIN_PIECE characters or more."""
    return {p.strip() for p, *_ in string.Formatter().parse(text) if len(p.strip()) >= MIN_PIECE}


def translation_problems(english: Sequence[ZooResult], spanish: Sequence[OverlayRun], lang: str = "es") -> list[str]:
    """Variants whose run in lang (spanish, run_messages's) is not their English run, translated.

    The same tests must fail and the same failure come first; no failure may hold one of the
    catalog's English sentences that lang says otherwise, and the first one, when the English one
    holds a message of the catalog's, must hold some of lang's own words. (A failure that is not the workbook's text, an error
    torch raised inside the student's code, is the same in both.)
    """
    catalog = [m for m in read_catalog(catalog_path(lang), lang) if m.id and m.string]
    ids, strings = [str(m.id) for m in catalog], [str(m.string) for m in catalog]
    # Words the reference's own errors use too ("unexpected key") tell nothing: a test quotes the code's errors.
    reference = REFERENCE.read_text(encoding="utf-8")
    english_only = {p for i in ids for p in _pieces(i) if not any(p in s for s in strings) and p not in reference}
    translated = {p for s in strings for p in _pieces(s) if not any(p in i for i in ids)}
    problems = []
    for en, run in zip(english, spanish, strict=True):
        bug, es_first = en.bug.id, first_shown(run)
        es_caught = [o.name for o in run.not_passed]
        if en.caught_by != es_caught:
            problems.append(f"{bug}: other tests fail in {lang}: {sorted(set(en.caught_by) ^ set(es_caught))}")
        if en.first is None or es_first is None:
            continue
        if en.first.name != es_first.name:
            problems.append(f"{bug}: the first failure shown is {en.first.name} in English, {es_first.name} in {lang}")
            continue
        for failure in run.not_passed:  # the first a plain pytest prints, the one check shows, and the others
            leaked = sorted(p for p in english_only if p in failure.message)
            if leaked:
                problems.append(f"{bug}: {failure.name} says in {lang}, in English: {leaked[0]!r}\n{failure.message[:600]}")
        shown = es_first.message[:SHOWN_CHARS]
        if any(p in en.first.message for p in english_only) and not any(p in shown for p in translated):
            problems.append(f"{bug}: the first failure shown in {lang} is not translated:\n{shown}")
    return problems


def fairness_problems(lab: Lab, results: Sequence[ZooResult], correct: Mapping[str, Scored]) -> list[str]:
    """Where the points policy of lab is unfair to the zoo: an empty list when it is fair.

    correct: the reference ("reference") and the correct alternatives (run_alternatives), whose run
    of the reference also gives the rules of each block.
    """
    problems = []
    notes_value = lab.notes.points / len(lab.notes_keys)
    if lab.rule_points <= notes_value:
        problems.append(f"rule_points = {lab.rule_points:g}: a rule must be worth more than one notes value "
                        f"({notes_value:g})")  # fmt: skip
    if lab.total_points != 100:
        problems.append(f"the points add up to {lab.total_points:g}, not 100")
    tests = [(o.nodeid, o.blocks[0]) for o in correct["reference"].run.outcomes if o.blocks]
    for block, rules in zip(lab.blocks, block_rules(lab, tests).values(), strict=True):
        if block.points != lab.rule_points * len(rules):
            problems.append(f"block {block.id} is worth {block.points:g} points, not rule_points x its "
                            f"{len(rules)} rules = {lab.rule_points * len(rules):g}")  # fmt: skip
    full = sum(b.points for b in lab.blocks) + lab.typecheck.points
    for name, scored in correct.items():
        if scored.points(lab) != full:
            problems.append(f"{name}: correct code gets {scored.points(lab):g} of {full:g} ({scored.failing[:3]})")
    lowest = min((s.points(lab) for s in correct.values()), default=full)
    invariants = {inv.id for inv in lab.invariants}
    for result in results:
        bug, points, blocks = result.bug, result.scored.points(lab), result.scored.blocks(lab)
        if points >= lowest:
            problems.append(f"{bug.id}: {points:g} points, not below correct code's {lowest:g}")
        if bug.invariant is not None:
            score = blocks[bug.block]
            if bug.invariant not in invariants:
                problems.append(f"{bug.id}: invariant {bug.invariant!r} is not one of labs/lab.toml's {sorted(invariants)}")
            elif score.points != 0 or bug.invariant not in {inv.id for inv in score.broken}:
                problems.append(f"{bug.id} breaks invariant {bug.invariant!r}, yet block {bug.block} gets "
                                f"{score.points:g} (broken: {[inv.id for inv in score.broken]})")  # fmt: skip
        elif full - points < max(lab.rule_points, notes_value + 0.01):
            problems.append(f"{bug.id}: caught, but loses only {full - points:g} points (a caught bug costs at least "
                            f"a rule, {lab.rule_points:g}, and more than one notes value, {notes_value:g})")  # fmt: skip
    return problems


def _catching_tests(result: ZooResult) -> str:
    """Catching tests with parametrizations folded: "test_x (3), test_y"."""
    counts = Counter(name.partition("[")[0] for name in result.caught_by)
    return ", ".join(f"`{n}` ({c})" if c > 1 else f"`{n}`" for n, c in counts.items())


_TABLE_TEXT = {
    "en": (
        "# Which test catches which mistake, and what it costs\n\n"
        "Generated by `python -m labkit.quality.zoo --write` from a run of every variant of the bug zoo "
        "(`tools/zoo/bugs.toml`) through the grading overlay; do not edit by hand. Each variant is "
        "the reference solution with one classic mistake. The keyword is a word that the message of "
        "the first failure shown (the one `check` shows a student) must contain, so that the first "
        "feedback names the mistake. The grade is the one `grade` gives the variant without a notes "
        "file, out of {full:g} (the blocks and `mypy --strict`; correct code gets {full:g}). A variant that "
        "breaks one of the lab's invariants (the invariant column) gets none of the points of its block; "
        "every other one loses at least one rule, {rule:g} points "
        "([how points are given](index.md#points)).\n\n"
        "{count} variants, all caught; grades from {lowest:g} to {highest:g}.\n\n"
        "| variant | block | mistake | keyword | first failure shown | caught by | invariant | grade |\n"
        "|---|---|---|---|---|---|---|---|\n"
    ),
    "es": (
        "# Qué test detecta cada error, y cuánto cuesta\n\n"
        "Generado por `python -m labkit.quality.zoo --write` a partir de una ejecución de cada variante del "
        "zoológico de errores (`tools/zoo/bugs.toml`) por la superposición del corrector; no se "
        "edita a mano. Cada variante es la solución de referencia con un error clásico. La palabra "
        "clave debe aparecer en el mensaje del primer fallo mostrado (el que `check` muestra al "
        "estudiante), para que el primer comentario que lee nombre el error. La nota es la que `grade` "
        "da a la variante sin archivo de notas, sobre {full:g} (los bloques y `mypy --strict`; un código "
        "correcto obtiene {full:g}). Una variante que rompe uno de los invariantes del laboratorio (la columna "
        "invariante) no obtiene ninguno de los puntos de su bloque; cualquier otra pierde al menos una "
        "regla, {rule:g} puntos ([cómo se dan los puntos](index.es.md#points)).\n\n"
        "{count} variantes, todas detectadas; notas de {lowest:g} a {highest:g}.\n\n"
        "| variante | bloque | error | palabra clave | primer fallo mostrado | detectada por | invariante | nota |\n"
        "|---|---|---|---|---|---|---|---|\n"
    ),
}


_ALTERNATIVES_TEXT = {
    "en": (
        "\n## Correct alternatives\n\n"
        "Choices the lab allows that the reference does not make, each an edit of the reference in "
        "`tools/zoo/bugs.toml` (`[[alternative]]`); the maintainers' tests require each to pass every "
        "graded test, under 200 seeds for the tests whose checks allow for float rounding.\n\n"
        "| alternative | what it changes | grade |\n|---|---|---|\n"
    ),
    "es": (
        "\n## Alternativas correctas\n\n"
        "Decisiones que el laboratorio permite y la referencia no toma, cada una como una edición de la "
        "referencia en `tools/zoo/bugs.toml` (`[[alternative]]`); los tests de mantenimiento exigen que "
        "cada una pase todos los tests evaluables, con 200 semillas en los tests cuyas comprobaciones "
        "admiten redondeo en coma flotante.\n\n"
        "| alternativa | qué cambia | nota |\n|---|---|---|\n"
    ),
}
_REFERENCE_ROW = {"en": "nothing: the reference solution itself", "es": "nada: la propia solución de referencia"}


def render_table(results: Sequence[ZooResult], correct: Mapping[str, Scored], lang: str) -> str:
    """The bug-zoo page in lang; correct as run_alternatives gives it."""
    lab = load_lab()
    rows = []
    for result in results:
        bug = result.bug
        mistake = bug.mistake if lang == "en" else bug.mistake_es
        first = f"`{result.first.name}`" if result.first else ""
        invariant = f"`{bug.invariant}`" if bug.invariant else ""
        rows.append(f"| `{bug.id}` | {bug.block} | {mistake} | `{bug.keyword}` | {first} | {_catching_tests(result)} "
                    f"| {invariant} | {result.scored.points(lab):g} |")  # fmt: skip
    grades = [r.scored.points(lab) for r in results] or [0.0]
    full = sum(b.points for b in lab.blocks) + lab.typecheck.points
    table = _TABLE_TEXT[lang].format(count=len(results), full=full, rule=lab.rule_points, lowest=min(grades),
                                     highest=max(grades)) + "\n".join(rows) + "\n"  # fmt: skip
    descriptions = {alt.id: alt.description if lang == "en" else alt.description_es for alt in load_alternatives()}
    table += _ALTERNATIVES_TEXT[lang] + "".join(
        f"| `{name}` | {_REFERENCE_ROW[lang] if name == 'reference' else descriptions[name]} | {s.points(lab):g} |\n"
        for name, s in correct.items()
    )
    if lang == "en":
        return table
    # Generated in both languages at once, so the Spanish table always translates the current English
    # one: record that for the site's drift gate.
    return with_translation_hash(table, text_hash(render_table(results, correct, "en").encode("utf-8")))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.quality.zoo", description=__doc__.split("\n")[0])
    parser.add_argument("-k", default="", help="only variants whose id contains this text")
    parser.add_argument("--jobs", type=int, default=2, help="variants run at once (default 2)")
    parser.add_argument("--write", action="store_true", help="regenerate the docs tables")
    args = parser.parse_args(argv)

    lab = load_lab()
    bugs = [b for b in load_bugs() if args.k in b.id]
    results = run_zoo(bugs, jobs=args.jobs)
    for result in results:
        caught = len(result.caught_by)
        first = result.first.name if result.first else "-"
        print(f"{result.bug.id:32} {result.scored.points(lab):5g} points, caught by {caught:3} tests, "
              f"first shown {first}: {_catching_tests(result)}")  # fmt: skip
    problems = zoo_problems(results)
    alternatives = [a for a in load_alternatives() if args.k in a.id]
    correct = run_alternatives(alternatives, jobs=args.jobs)
    for alt_id, scored in correct.items():
        print(f"{alt_id:32} {scored.points(lab):5g} points (correct code), fails {len(scored.failing)} tests")
        if scored.failing:
            problems.append(f"{alt_id}: correct code fails {scored.failing[:5]}")
    problems += fairness_problems(lab, results, correct)
    for problem in problems:
        print(f"PROBLEM {problem}")
    if args.write and not args.k:
        for lang, path in TABLE_PATHS.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_table(results, correct, lang), encoding="utf-8")
            print(f"wrote {path.relative_to(WORKBOOK_ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
