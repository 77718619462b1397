"""The generated GitHub workflows (labkit.grading.workflows), and the sharded grading they run.

Each workflow is committed as generated, passes GitHub's workflow schema (check-jsonschema, offline),
and grade-class.yml has the shape it promises: a plan job whose script emits the shard list, a matrix
of `grade --shard` jobs that upload their results, and a `grade --merge` job that needs them all.
Grading a class in shards and merging gives the same gradebook as grading it at once.
"""

from __future__ import annotations

import csv
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from labkit.core.labinfo import load_lab
from labkit.core.overlay import REFERENCE, WORKBOOK_ROOT
from labkit.grading import grade as grade_cli
from labkit.grading import classroom
from labkit.grading.classroom import WORKFLOW_PATH as CLASSROOM_PATH
from labkit.grading.examples import materialize
from labkit.grading.grader import expected_tests
from labkit.grading.points import block_rules, score_block
from labkit.grading.workflows import GRADE_CLASS_PATH, WORKFLOWS

#: Cheap example submissions (each graded in ~10 s): one that works in part, two that do not import.
SHARDED_CLASS = ["import_exception", "partial", "syntax_error"]
#: The limits tools/tests/test_grading.py grades the examples with.
# The examples here are the workbook's own (trusted): graded without the sandbox, on the fork server.
GRADE_LIMITS = ["--test-timeout", "10", "--time-limit", "120", "--jobs", "1", "--no-sandbox"]


def _schema_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))  # YAML 1.2: `on` stays a string


def test_workflows_are_generated_from_the_metadata() -> None:
    lab = load_lab()
    for path, render in WORKFLOWS.items():
        assert path.read_text(encoding="utf-8") == render(lab), (
            f"{path.relative_to(WORKBOOK_ROOT)} is stale: run python -m labkit.grading.workflows --write"
        )


def test_classroom_scores_blocks_as_grade_does() -> None:
    # Each step earns its max-score when `--step RULE GATE...` says so. For any outcome of the rules
    # (random, seeded: passing, failing a check, raising), the steps of a block must add up to what
    # labkit.grading.points gives that block.
    lab = load_lab()
    steps = [s for s in _load(CLASSROOM_PATH)["jobs"]["run-autograding-tests"]["steps"]
             if s.get("uses", "").startswith("classroom-resources/autograding-command-grader")]  # fmt: skip
    rules = block_rules(lab, expected_tests())
    rng = random.Random(20)
    for _ in range(300):
        outcome = {name: rng.choice([(True, None), (True, None), (True, None), (False, "AssertionError"), (False, "ValueError")])
                   for names in rules.values() for name in names}  # fmt: skip
        for block in lab.blocks:
            earned = 0.0
            for step in steps:
                if step["name"].startswith(f"Block {block.id}: "):
                    selected = step["with"]["command"].split("--step ")[1].split()
                    cases = [(f"{lab.graded_tests}::{name}[case]", *outcome[name]) for name in selected]
                    earned += float(step["with"]["max-score"]) * classroom.step_earns(lab, selected[0], cases)
            cases = [(f"{lab.graded_tests}::{name}[case]", *outcome[name]) for name in rules[block.marker]]
            assert earned == score_block(block, lab, cases).points, (block.id, outcome)
    extra = [s["id"] for s in steps if s["id"] in ("typecheck", "notes")]
    assert len(steps) == sum(map(len, rules.values())) + 2 and extra == ["typecheck", "notes"]
    total = sum(float(s["with"]["max-score"]) for s in steps)
    assert total == lab.total_points, f"the Classroom steps add up to {total:g}, grade's maximum is {lab.total_points:g}"


def test_a_classroom_step_runs_its_tests() -> None:
    # The reference earns a step; the stubs (the workbook's own lora.py) do not.
    lab = load_lab()
    gate = ["test_lora_init_identity", "test_freeze_only_lora_learns"]
    assert classroom.run_step(lab, "test_param_count_linear", gate, REFERENCE) == 0
    assert classroom.run_step(lab, "test_param_count_linear", gate) == 1


def test_every_workflow_passes_githubs_schema() -> None:
    checked = _schema_check(*WORKFLOWS)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_check_fails_on_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    # No runs-on, and `step` for `steps`: GitHub rejects both.
    broken.write_text("name: broken\non: push\njobs:\n  grade:\n    step:\n      - run: grade\n", encoding="utf-8")
    checked = _schema_check(broken)
    assert checked.returncode != 0 and "broken.yml" in checked.stdout + checked.stderr, checked.stdout + checked.stderr


def test_grade_class_shards_then_merges() -> None:
    workflow = _load(GRADE_CLASS_PATH)
    jobs = workflow["jobs"]
    assert set(workflow["on"]["workflow_dispatch"]["inputs"]) == {"submissions", "shards"}
    assert jobs["shard"]["needs"] == "plan" and jobs["merge"]["needs"] == "shard"
    assert jobs["shard"]["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.plan.outputs.shards) }}"
    shard_steps, merge_steps = jobs["shard"]["steps"], jobs["merge"]["steps"]
    assert any("--shard" in step.get("run", "") for step in shard_steps)
    uploads = [step["with"]["name"] for step in shard_steps if step.get("uses", "").startswith("actions/upload-artifact@")]
    downloads = [step["with"]["pattern"] for step in merge_steps if step.get("uses", "").startswith("actions/download-artifact@")]
    assert uploads == [f"{load_lab().id}-shard-${{{{ matrix.shard }}}}"] and downloads == [f"{load_lab().id}-shard-*"]
    merge = next(step["run"] for step in merge_steps if "--merge" in step.get("run", ""))
    assert "GITHUB_STEP_SUMMARY" in merge
    assert any(step.get("uses", "").startswith("actions/upload-artifact@") for step in merge_steps)
    for job in ("shard", "merge"):
        assert any(step.get("run") == "bash tools/bootstrap.sh" for step in jobs[job]["steps"]), job


def test_the_plan_job_lists_the_shards(tmp_path: Path) -> None:
    script = next(step["run"] for step in _load(GRADE_CLASS_PATH)["jobs"]["plan"]["steps"] if "run" in step)
    output = tmp_path / "github_output"

    def plan(shards: str, submissions: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        output.write_text("", encoding="utf-8")
        env = {"PATH": "/usr/bin:/bin", "SHARDS": shards, "SUBMISSIONS": str(submissions), "GITHUB_OUTPUT": str(output)}
        return subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True, timeout=30)

    assert plan("3").returncode == 0 and output.read_text(encoding="utf-8") == "shards=[1,2,3]\n"
    assert plan("1").returncode == 0 and output.read_text(encoding="utf-8") == "shards=[1]\n"
    for bad in ("0", "257", "2.5", "x"):
        assert plan(bad).returncode != 0 and output.read_text(encoding="utf-8") == "", bad
    assert plan("2", tmp_path / "missing").returncode != 0


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as fh:
        return [{k: v for k, v in row.items() if "second" not in k and "time" not in k} for row in csv.DictReader(fh)]


def test_shards_merged_give_the_gradebook_of_one_batch(tmp_path: Path) -> None:
    limits = [*GRADE_LIMITS, "--mypy-cache", str(tmp_path / "mypy")]  # mypy starts cold only once
    examples, submissions = materialize(tmp_path / "all"), tmp_path / "class"
    submissions.mkdir()
    for name in SHARDED_CLASS:  # each a workbook-like directory or a bare <name>.py
        source = examples / name if (examples / name).is_dir() else examples / f"{name}.py"
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, submissions / source.name)
    start = time.monotonic()
    assert grade_cli.main([str(submissions), "--out", str(tmp_path / "batch"), *limits]) == 0
    for i in (1, 2):
        assert grade_cli.main([str(submissions), "--shard", f"{i}/2", "--out", str(tmp_path / f"shard-{i}"), *limits]) == 0
    assert grade_cli.main(["--merge", str(tmp_path / "shard-1"), str(tmp_path / "shard-2"), "--out", str(tmp_path / "merged")]) == 0
    print(f"graded {len(SHARDED_CLASS)} submissions twice (one batch, 2 shards) and merged in {time.monotonic() - start:.1f} s")
    shards = [{r["submission"] for r in _rows(tmp_path / f"shard-{i}")} for i in (1, 2)]
    assert shards[0] and shards[1] and not shards[0] & shards[1], "each shard grades its own, non-empty part"
    batch, merged = _rows(tmp_path / "batch"), _rows(tmp_path / "merged")
    assert [r["submission"] for r in batch] == SHARDED_CLASS
    assert merged == batch
    assert (tmp_path / "merged" / "summary.md").read_text(encoding="utf-8") == (tmp_path / "batch" / "summary.md").read_text(
        encoding="utf-8"
    )
    assert {p.parent.name for p in (tmp_path / "merged").glob("*/feedback.md")} == {r["submission"] for r in batch}
