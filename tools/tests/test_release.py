"""The student edition (`release`, labkit.grading.release): nothing of the reference in it, and it works on its own.

The edition is written to a folder outside the workbook and used from there as a student would: set
up by its own bootstrap, its graded tests all red on the stubs, its `check`, its site; and the
instructor's grader gives a clone of it with a correct lora.py full marks for the code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.core.labinfo import load_lab
from labkit.core.overlay import REFERENCE
from labkit.grading import release
from labkit.grading.grader import expected_tests, grade_submission
from labkit.grading.submission import find_submission


@pytest.fixture(scope="module")
def edition(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("apart") / "lab00"
    assert release.main([str(target)]) == 0
    return target


@pytest.fixture(scope="module")
def bootstrapped(edition: Path) -> Iterator[Path]:
    """The edition set up as a student sets it up: its own bootstrap, its own .venv (about half a minute)."""
    setup = subprocess.run(["bash", "tools/bootstrap.sh"], cwd=edition, capture_output=True, text=True, timeout=900,
                           env={**os.environ, "PYTHON": sys.executable})  # fmt: skip
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-2000:]
    yield edition
    shutil.rmtree(edition / ".venv")  # 1.4 GB that pytest would otherwise keep for three runs


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(root).parts}  # fmt: skip


def _run(edition: Path, *command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A command in the edition, with its own package and tooling first on the path (not the workbook's)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(edition / "tools"), str(edition / "src")])}
    return subprocess.run(command, cwd=edition, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_edition_gives_nothing_away(edition: Path) -> None:
    files = _files(edition)
    for left_out in ("solutions/", "tools/zoo/", "tools/grading/", "docs/instructors/", "tools/tests/", "tools/labkit/quality/"):
        assert not [p for p in files if p.startswith(left_out)], f"{left_out} is in the edition"
    edition_spec = release.load_edition()
    assert release.leaks(files, release.secret_lines(edition_spec)) == [], "the edition on disk gives the reference away"
    log = subprocess.run(["git", "log", "--format=%s"], cwd=edition, capture_output=True, text=True, check=True)
    assert log.stdout.count("\n") == 1 and "student edition" in log.stdout
    assert "student edition" in files["README.md"].decode() and "edición para estudiantes" in files["README.es.md"].decode()
    assert b'release = "' not in files["pyproject.toml"] and b'grade = "' not in files["pyproject.toml"]


def test_the_leak_check_can_fail() -> None:
    spec = release.load_edition()
    secret = release.secret_lines(spec)
    assert len(secret) > 50, "too few lines of the reference count as giving it away"
    found = release.leaks({"notes.md": REFERENCE.read_bytes(), "page.md": b"see [it](../solutions/x.md)\n"}, secret)
    assert any(f.startswith("notes.md:") for f in found) and any("page.md:1: a link" in f for f in found)
    stale = release.Edition(spec.include, spec.exclude, spec.files, {"mkdocs.yml": [("no such text", "")]},
                            spec.min_length, spec.common)  # fmt: skip
    with pytest.raises(release.ReleaseError, match="mkdocs.yml: edit target found 0 times"):
        release.edition_files(stale)


def test_a_non_empty_folder_is_not_replaced_unasked(edition: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert release.main([str(edition)]) == 2 and "is not empty" in capsys.readouterr().err


def test_the_edition_works_on_its_own(bootstrapped: Path, tmp_path: Path) -> None:
    edition = bootstrapped
    # The student's commands, from the edition's own .venv: every graded test red on the stubs.
    tests = subprocess.run([".venv/bin/pytest", "-q", "-p", "no:cacheprovider"], cwd=edition, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert tests.returncode == 1 and f"{len(expected_tests())} failed in" in tests.stdout and " passed" not in tests.stdout, (
        tests.stdout[-2000:]
    )
    progress = subprocess.run([".venv/bin/check"], cwd=edition, capture_output=True, text=True, timeout=300)
    assert "not started" in progress.stdout and "Traceback" not in progress.stderr, progress.stdout + progress.stderr
    # The site needs the maintainers' tooling (mkdocs), which a student's install leaves out.
    site = _run(edition, sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"))
    assert site.returncode == 0, site.stderr[-3000:]
    assert not (tmp_path / "site" / "solutions").exists() and (tmp_path / "site" / "lab").is_dir()
    # A student's clone with a correct lora.py, graded by the instructor's grader: full marks for the code.
    clone = tmp_path / "kenji"
    subprocess.run(["git", "clone", "-q", str(edition), str(clone)], check=True)
    shutil.copyfile(REFERENCE, clone / "src" / "minituner" / "lora.py")
    grade = grade_submission(find_submission(clone, load_lab()))
    assert all(b.points == b.max_points for b in grade.blocks) and grade.typecheck.ok, [(b.id, b.points) for b in grade.blocks]


def _restore_script(repo: Path) -> str:
    from ruamel.yaml import YAML

    workflow = YAML(typ="safe").load((repo / ".github" / "workflows" / "classroom.yml").read_text(encoding="utf-8"))
    steps = workflow["jobs"]["run-autograding-tests"]["steps"]
    return str(next(s for s in steps if s.get("name") == "The graded files, as released")["run"])


def test_committed_test_edits_do_not_change_the_points(edition: Path, tmp_path: Path) -> None:
    # A student with the stubs commits tests that always pass, and runs the Classroom workflow's steps.
    repo = tmp_path / "student"
    subprocess.run(["git", "clone", "-q", str(edition), str(repo)], check=True)
    easy = "import pytest\n\n\n@pytest.mark.block_a\ndef test_lora_init_identity():\n    pass\n"
    (repo / "tests" / "test_minituner.py").write_text(easy, encoding="utf-8")
    git = ["git", "-c", "user.name=s", "-c", "user.email=s@example.invalid"]
    subprocess.run([*git, "commit", "-q", "-am", "easy tests"], cwd=repo, check=True)
    step = (sys.executable, "-m", "labkit.grading.classroom", "--step", "test_lora_init_identity")
    assert _run(repo, *step).returncode == 0, "the edited tests should earn the step before the restore (the attack)"
    restore = subprocess.run(["bash", "-e", "-c", _restore_script(repo)], cwd=repo, capture_output=True, text=True)
    assert restore.returncode == 0, restore.stdout + restore.stderr
    assert _run(repo, *step).returncode == 1, "with the tests as released, the stubs earn nothing"
    # A history rewritten so that its first commit holds the edited tests fails the restore itself.
    forged = tmp_path / "forged"
    shutil.copytree(repo, forged, ignore=shutil.ignore_patterns(".git"))
    (forged / "tests" / "test_minituner.py").write_text(easy, encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=forged, check=True)
    subprocess.run([*git, "add", "-A"], cwd=forged, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one commit"], cwd=forged, check=True)
    caught = subprocess.run(["bash", "-e", "-c", _restore_script(forged)], cwd=forged, capture_output=True, text=True)
    assert caught.returncode != 0 and "tests/test_minituner.py: FAILED" in caught.stdout, caught.stdout + caught.stderr
