"""The grader and the student's check, on the example submissions (tools/grading/examples).

The examples are written out as a class (labkit.grading.examples) and graded as a class would be:
one batch, in the sandbox, with the batch's outputs written. Some of them attack the grader; after the batch the workbook checkout must be unchanged,
no process they started may be alive, and the gradebook must hold exactly the grader's rows.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labkit.core.labinfo import load_lab
from labkit.core.overlay import REFERENCE, STUBS, WORKBOOK_ROOT, Limits
from labkit.core.sandbox import MARKER_ENV
from labkit.core.tomlread import read_toml
from labkit.grading import grade as grade_cli
from labkit.grading import results
from labkit.grading.feedback import feedback_markdown
from labkit.grading import grader as grader_module
from labkit.grading.examples import EXAMPLES, materialize
from labkit.grading.grader import DEFAULT_GRADER_SEED, Grade, expected_tests, grade_from_json, grade_submission
from labkit.grading.submission import Submission, find_submission

EXPECTED = read_toml(EXAMPLES / "expected.toml")
LIMITS = Limits(memory_mb=4096, output_mb=64, test_timeout_s=10)
TIME_LIMIT = 120.0
#: Made by the tests from the reference rather than kept as a copy: a correct lora.py saved with a
#: byte-order mark and Windows line endings.
BOM_CRLF = "reference_bom_crlf"


def _checkout_state() -> str:
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--ignored=no"], cwd=WORKBOOK_ROOT,
                            capture_output=True, text=True, check=True)  # fmt: skip
    diff = subprocess.run(["git", "diff", "HEAD"], cwd=WORKBOOK_ROOT, capture_output=True, text=True, check=True)
    return status.stdout + diff.stdout


def _sandboxed_processes() -> list[str]:
    """Processes still alive that were started inside a grading sandbox (their environment says so)."""
    alive = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"{MARKER_ENV}=1".encode() in environ.read_bytes().split(b"\0"):
                alive.append(environ.parent.name)
        except OSError:
            continue
    return alive


def _write_folder(grades: list[Grade], out: Path, lang: str) -> None:
    """An output folder as grade leaves it: the grades' results, their class, the gradebook."""
    results.write_results(grades, out, lang)
    results.write_class(out, results.ClassList(tuple(g.name for g in grades)))
    results.rebuild(out)


@pytest.fixture(scope="module")
def example_class(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples written out as a class directory, as `grade` with no argument grades them."""
    return materialize(tmp_path_factory.mktemp("class"))


@pytest.fixture(scope="module")
def class_batch(tmp_path_factory: pytest.TempPathFactory, example_class: Path) -> tuple[dict[str, Grade], Path, str]:
    """The examples graded as one class (plus the BOM/CRLF reference), and the batch's output folder."""
    lab = load_lab()
    extra = tmp_path_factory.mktemp("extra") / f"{BOM_CRLF}.py"
    extra.write_bytes(b"\xef\xbb\xbf" + REFERENCE.read_bytes().replace(b"\n", b"\r\n"))
    submissions = grade_cli.collect_submissions([example_class, extra], lab)
    before = _checkout_state()
    start = time.monotonic()
    grades = grade_cli.grade_all(submissions, jobs=2, seed=20261123, limits=LIMITS, time_limit=TIME_LIMIT, hidden=None)
    print(f"graded {len(grades)} examples in {time.monotonic() - start:.1f} s with 2 jobs, sandboxed")
    out = tmp_path_factory.mktemp("grades")
    _write_folder(grades, out, "en")
    return {g.name: g for g in grades}, out, before


@pytest.fixture(scope="module")
def example_grades(class_batch: tuple[dict[str, Grade], Path, str]) -> dict[str, Grade]:
    return {name: g for name, g in class_batch[0].items() if name != BOM_CRLF}


def test_lab_metadata_is_consistent() -> None:
    lab = load_lab()
    assert lab.total_points == 100
    pyproject = read_toml(WORKBOOK_ROOT / "pyproject.toml")
    markers = {m.split(":")[0] for m in pyproject["tool"]["pytest"]["ini_options"]["markers"]}
    assert {b.marker for b in lab.blocks} == markers
    for block in lab.blocks:
        assert (WORKBOOK_ROOT / block.notebook).is_file(), block.notebook


def test_every_example_is_graded_as_expected(example_grades: dict[str, Grade]) -> None:
    assert set(example_grades) == set(EXPECTED), "examples and expected.toml disagree"
    wrong = []
    for name, expected in EXPECTED.items():
        grade = example_grades[name]
        feedback = feedback_markdown(grade, "en")
        withheld = expected.get("withheld", False)
        if abs(grade.points - expected["total"]) > 0.01 or expected["reason"] not in feedback or grade.withheld != withheld:
            wrong.append(f"{name}: {grade.points:g} points (expected {expected['total']:g}), withheld {grade.withheld} "
                         f"(expected {withheld}); reason {expected['reason']!r} "
                         f"{'found' if expected['reason'] in feedback else 'missing'}")  # fmt: skip
        if "seconds_under" in expected and grade.seconds >= expected["seconds_under"]:
            wrong.append(f"{name}: took {grade.seconds:g} s, more than {expected['seconds_under']:g} s")
    assert wrong == [], "\n".join(wrong)


def test_a_correct_file_with_bom_and_crlf_gets_full_marks(class_batch: tuple[dict[str, Grade], Path, str]) -> None:
    grade = class_batch[0][BOM_CRLF]
    assert all(b.points == b.max_points for b in grade.blocks) and grade.typecheck.ok and not grade.withheld, (
        feedback_markdown(grade, "en")
    )


def test_the_batch_leaves_nothing_behind(class_batch: tuple[dict[str, Grade], Path, str]) -> None:
    grades, out, before = class_batch
    time.sleep(2)  # a process that outlived its run would act now
    assert _sandboxed_processes() == [], "processes started by submissions outlived their run"
    assert _checkout_state() == before, "grading changed the workbook checkout"
    rows = list(csv.DictReader(open(out / "gradebook.csv", encoding="utf-8")))
    assert sorted(r["submission"] for r in rows) == sorted(grades), "the gradebook holds rows the grader did not write"
    assert all(g.notices == [] for g in grades.values()), "every example is graded inside the sandbox"


def test_a_crash_or_hang_costs_only_its_block(example_grades: dict[str, Grade]) -> None:
    for name, broken in [("infinite_loop", "D"), ("output_flood", "C"), ("memory_hog", "E")]:
        for block in example_grades[name].blocks:
            full = block.points == block.max_points
            assert full != (block.id == broken), f"{name}: block {block.id} got {block.points:g}"


def test_batch_outputs(example_grades: dict[str, Grade], tmp_path: Path) -> None:
    _write_folder(list(example_grades.values()), tmp_path, "es")
    rows = list(csv.DictReader(open(tmp_path / "gradebook.csv", encoding="utf-8")))
    assert {r["submission"] for r in rows} == set(EXPECTED)
    assert next(r for r in rows if r["submission"] == "complete")["total"] == "100"
    withheld = {r["submission"] for r in rows if r["withheld_for_review"]}
    assert withheld == {name for name, e in EXPECTED.items() if e.get("withheld")}
    assert "line " in next(r for r in rows if r["submission"] in withheld)["withheld_for_review"]
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "| `test_lora_init_identity[bias-float32]` |" in summary and "Most common failure messages" in summary
    assert "# Comentarios: partial" in (tmp_path / "partial" / "feedback.md").read_text(encoding="utf-8")


def test_shards_partition_and_merge(example_grades: dict[str, Grade], example_class: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    submissions = grade_cli.collect_submissions([example_class], load_lab())
    shards = [grade_cli.shard(submissions, f"{i}/3") for i in (1, 2, 3)]
    assert sorted(s.name for part in shards for s in part) == sorted(s.name for s in submissions)
    folders = [tmp_path / f"shard{i}" for i in (1, 2, 3)]
    whole = tuple(s.name for s in submissions)
    for i, (part, folder) in enumerate(zip(shards, folders, strict=True), 1):
        results.write_results([example_grades[s.name] for s in part], folder, "en")
        results.write_class(folder, results.ClassList(tuple(s.name for s in part), f"{i}/3", whole))
    with pytest.raises(SystemExit):
        grade_cli.shard(submissions, "4/3")

    def merge(*folders: Path) -> tuple[int, str]:
        code = grade_cli.main(["--merge", *map(str, folders), "--out", str(tmp_path / "all")])
        return code, capsys.readouterr().err

    # Refused, with a reason and nothing written: each of the wrong merges.
    other = dataclasses.replace(example_grades["complete"], name="newcomer")
    results.write_results([other], tmp_path / "stray", "en")
    results.write_class(tmp_path / "stray", results.ClassList((other.name,)))
    reseeded = tmp_path / "reseeded"
    results.write_results([dataclasses.replace(example_grades[n], audit={**example_grades[n].audit, "seed": 1})
                           for n in results.read_class(folders[2]).submissions], reseeded, "en")  # type: ignore[union-attr]  # fmt: skip
    results.write_class(reseeded, results.read_class(folders[2]))  # type: ignore[arg-type]
    for given, said in [
        ((folders[0], tmp_path / "nowhere", folders[2]), "nowhere is not a folder"),
        ((folders[0], folders[1], folders[1], folders[2]), "is given twice"),
        ((folders[0],), "shard 2/3, 3/3 is missing"),
        ((folders[0], folders[1], folders[2], tmp_path / "stray"), "holds a whole class"),
        ((folders[0], folders[1], reseeded), "with seed = 1"),
    ]:
        code, err = merge(*given)
        assert code == 2 and said in err, (given, err)
    assert not (tmp_path / "all" / "gradebook.csv").exists(), "a refused merge wrote a gradebook"
    twice = example_grades[shards[0][0].name]
    results.write_results([twice], folders[1], "en")
    results.write_class(folders[1], results.ClassList((*(s.name for s in shards[1]), twice.name), "2/3", whole))
    code, err = merge(*folders)
    assert code == 2 and f"{twice.name} is in both" in err, err
    shutil.rmtree(folders[1] / twice.name)
    results.write_class(folders[1], results.ClassList(tuple(s.name for s in shards[1]), "2/3", (*whole, "late")))
    code, err = merge(*folders)
    assert code == 2 and "cut from different classes" in err, err
    results.write_class(folders[1], results.ClassList(tuple(s.name for s in shards[1]), "2/3", whole))

    assert merge(*folders)[0] == 0
    merged = (tmp_path / "all" / "gradebook.csv").read_bytes()
    assert merged == results.gradebook_csv(list(example_grades.values())).encode(), "the merge differs from a single run"
    with open(tmp_path / "all" / "gradebook.csv", encoding="utf-8") as fh:
        assert sorted(row["submission"] for row in csv.DictReader(fh)) == sorted(EXPECTED)


#: A hidden test as an instructor writes one: the public scenarios, its own inputs and its own checks.
HIDDEN_TEST = """\
import pytest
import torch

import scenarios


@pytest.mark.block_a
def test_hidden_rank_one_output(observe):
    weight, bias = torch.randn(5, 3), torch.randn(5)
    x = torch.randn(2, 3)
    seen = observe(scenarios.forward_at_init, base={"weight": weight, "bias": bias}, x=x, r=1, alpha=2.0)
    assert seen["out"]["type"] == "torch.Tensor", "forward must return a plain tensor"
    expected = torch.nn.functional.linear(x, weight, bias)  # what nn.Linear computes, bit for bit
    assert torch.equal(seen["out"]["value"], expected), "rank 1: the output at init is base(x)"
"""


def test_reference_full_marks_stubs_zero_hidden_tests_count(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "test_hidden.py").write_text(HIDDEN_TEST, encoding="utf-8")
    # The workbook's own code needs no sandbox (the example batch grades the reference in it).
    trusted = {"limits": LIMITS, "sandbox": False, "mypy_cache": tmp_path / "mypy"}
    reference = grade_submission(Submission("reference", REFERENCE, None), hidden=hidden, **trusted)  # type: ignore[arg-type]
    plain = grade_submission(Submission("r", REFERENCE, None), **trusted)  # type: ignore[arg-type]
    assert reference.blocks[0].total == 1 + plain.blocks[0].total
    assert all(b.points == b.max_points for b in reference.blocks) and reference.typecheck.ok
    stubs = grade_submission(Submission("stubs", STUBS, None), hidden=hidden, **trusted)  # type: ignore[arg-type]
    assert stubs.points == 0 and {b.status for b in stubs.blocks} == {"not started"}
    # Each grade says what produced it.
    audit = reference.audit
    assert audit["lora_sha256"] == hashlib.sha256(REFERENCE.read_bytes()).hexdigest() and audit["notes_sha256"] is None
    assert audit["seed"] == DEFAULT_GRADER_SEED and audit["hidden_tests_sha256"] and plain.audit["hidden_tests_sha256"] is None
    assert str(audit["workbook_commit"]).startswith(subprocess.run(["git", "rev-parse", "HEAD"], cwd=WORKBOOK_ROOT,
                                                                   capture_output=True, text=True).stdout.strip())  # fmt: skip
    assert datetime.datetime.fromisoformat(str(audit["started"])).tzinfo is not None
    assert grade_from_json(reference.to_json()).audit == audit


def test_results_are_written_whole(tmp_path: Path) -> None:
    # Written through a temporary file and a rename: no temporary file stays, a reader sees old or new.
    target = tmp_path / "result.json"
    target.write_text("old", encoding="utf-8")
    results.write_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "new" and [p.name for p in tmp_path.iterdir()] == ["result.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_hidden_tests_and_the_seed_never_reach_the_worker(example_class: Path, tmp_path: Path) -> None:
    # reads_hidden looks for hidden tests and the seed around its worker and raises what it finds.
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "test_hidden.py").write_text(HIDDEN_TEST + "# SECRET-MARKER of the hidden test\n", encoding="utf-8")
    seed = 987654321
    submission = find_submission(example_class / "reads_hidden.py", load_lab())
    grade = grade_submission(submission, seed=seed, limits=LIMITS, time_limit=TIME_LIMIT, hidden=hidden)
    # The audit record is the instructor's (it holds the seed and the hidden tests' digest, to defend
    # the grade); everything else of the grade, the feedback first, must not show them.
    assert grade.audit["seed"] == seed and grade.audit["hidden_tests_sha256"]
    graded = {k: v for k, v in grade.to_json().items() if k != "audit"}
    shown = json.dumps(graded) + feedback_markdown(grade, "en") + feedback_markdown(grade, "es")
    assert "seed=None" in shown, "the example ran and reported what it found"
    for secret in ("SECRET-MARKER", str(seed), "test_hidden", "hidden_rank_one"):
        assert secret not in shown, f"{secret!r} reached the grade of a submission"
    assert grade.blocks[0].total == 1 + sum(1 for _, marker in expected_tests() if marker == "block_a")


def test_a_grader_error_costs_only_its_submission(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(grader_module, "grade_submission", broken)
    grade = grader_module.grade_or_report(Submission("kenji", tmp_path / "lora.py", None), limits=LIMITS)
    assert grade.points == 0 and grade.withheld and "TypeError: unhashable type" in grade.problem["en"]
    assert "el corrector falló" in grade.problem["es"] and len(grade.blocks) == len(load_lab().blocks)
    _write_folder([grade], tmp_path / "out", "en")
    assert "kenji" in (tmp_path / "out" / "gradebook.csv").read_text(encoding="utf-8")


def test_missing_lora_is_reported(tmp_path: Path) -> None:
    submission = find_submission(tmp_path, load_lab())
    grade = grade_submission(submission, limits=LIMITS)
    assert grade.points == 0 and "no lora.py found" in grade.problem["en"]
    assert "no se encontró lora.py" in grade.problem["es"]


def _check(*args: str, lang_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LANG": lang_env, "LANGUAGE": "", "LC_ALL": ""}
    return subprocess.run([sys.executable, "-m", "labkit.grading.check", *args], capture_output=True, text=True, env=env, timeout=600)


def test_check_gives_hints_in_the_users_language() -> None:
    # A whole `check` run, its progress and its languages: tools/tests/test_check.py.
    hint = _check("--hint", "e", lang_env="C.UTF-8")
    words = " ".join(load_lab().block("E").hint["en"].split())
    assert hint.returncode == 0 and " ".join(hint.stdout.split()).endswith(words), hint.stdout
    assert max(len(line) for line in hint.stdout.splitlines()) <= 88, "hints are wrapped"
    pista = _check("--hint", "A", lang_env="es_ES.UTF-8")
    assert pista.returncode == 0 and pista.stdout.startswith("Pista para el bloque A")
    bad = _check("--hint", "Z", lang_env="C.UTF-8")
    assert bad.returncode == 2 and "no block 'Z'" in bad.stderr
    bad_notebook = _check("--notebooks", "Z", lang_env="C.UTF-8")
    assert bad_notebook.returncode == 2 and "no block 'Z'" in bad_notebook.stderr


def test_a_whole_repository_is_collected_like_a_grader(tmp_path: Path) -> None:
    # A submission handed in as a whole repository (what GitHub Classroom collects): only its lora.py
    # and its notes file are looked at; links, pipes and whatever else lie elsewhere are never opened.
    lab = load_lab()
    repo = tmp_path / "kenji"
    lora = repo / lab.submission
    lora.parent.mkdir(parents=True)
    lora.write_bytes(REFERENCE.read_bytes())
    notes = repo / lab.notes_path
    notes.parent.mkdir(parents=True)
    notes.write_text("merge_diff: 1e-7\n", encoding="utf-8")
    (repo / "tools" / "examples").mkdir(parents=True)
    (repo / "tools" / "examples" / "lora.py").symlink_to("/etc/passwd")
    (repo / "data").symlink_to("/")
    os.mkfifo(repo / "pipe")
    found = find_submission(repo, lab)
    assert (found.lora, found.notes, found.problem) == (lora, notes, {})
    # A link as one of the two files, or on the way to one, is still refused.
    notes.unlink()
    notes.symlink_to(lora)
    assert f"{lab.notes_path} is a symbolic link" in find_submission(repo, lab).problem["en"]
    notes.unlink()
    other = tmp_path / "elsewhere"
    (repo / "src").rename(other)
    (repo / "src").symlink_to(other)
    assert find_submission(repo, lab).problem["en"].startswith("src is a symbolic link")


def test_each_grade_is_handed_on_as_soon_as_it_is_done(tmp_path: Path) -> None:
    # grade writes a submission's files from this callback, so a kill later keeps them.
    for name in ("ana", "ben"):
        (tmp_path / f"{name}.py").write_text("def broken(:\n", encoding="utf-8")  # a syntax error: graded at once
    submissions = grade_cli.collect_submissions([tmp_path], load_lab())
    seen: list[str] = []
    grades = grade_cli.grade_all(submissions, jobs=1, seed=1, limits=LIMITS, time_limit=TIME_LIMIT, hidden=None,
                                 sandbox=False, on_grade=lambda g: seen.append(g.name))  # fmt: skip
    assert sorted(seen) == ["ana", "ben"] == [g.name for g in grades]
