"""The instructor's path on localcluster: release, collect, grade from live checks, export.

Three attendees hand in lab 00: one complete, one who skipped a step, and one whose grading finds the
environment down. The instructor runs the `lab` commands as they would: `lab release --course`,
`lab collect` over a directory of homes, `lab grade --csv`. The complete one earns every point, the
partial one loses the point of the step it skipped, and the one graded while the cluster was down is
flagged for review in the gradebook and the CSV, never scored zero.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.notebooks.conftest import LocalCluster
from tests.notebooks.course import attendee_solutions, grade_id

pytestmark = pytest.mark.notebooks

LAB = "00-setup"
SOLUTION = Path(__file__).resolve().parents[2] / "solutions" / f"{LAB}.ipynb"


def lab(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The `lab` command as the instructor types it, in `cwd`."""
    environment = {**os.environ, **(env or {})}
    # Not activated: `lab` must find nbgrader's helpers (alembic) beside its own Python by itself.
    environment["PATH"] = "/usr/bin:/bin"
    return subprocess.run(
        [sys.executable, "-m", "localcluster.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def hand_in(homes: Path, student: str, released: Path, filled: dict[str, str]) -> None:
    """The attendee's work copy of the released lab in their home, the cells in `filled` completed."""
    notebook = nbformat.read(released, as_version=4)
    for cell in notebook.cells:
        cell_id = grade_id(cell)
        if cell_id is not None and cell_id in filled:
            cell.source = filled[cell_id]
    copy = homes / student / "workspace" / f"{LAB}.ipynb"
    copy.parent.mkdir(parents=True)
    nbformat.write(notebook, copy)


def rows_of(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open(encoding="utf-8") as stream:
        return {(row["student"], row["check"]): row for row in csv.DictReader(stream)}


def test_release_collect_grade_and_export(
    lab_cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    course = tmp_path / "course"
    released = lab("release", "--course", str(course), "--labs", str(tmp_path / "labs"), cwd=tmp_path)
    assert released.returncode == 0, released.stderr
    assert f"released {LAB}" in released.stdout

    solution = attendee_solutions(SOLUTION)
    release_copy = course / "release" / LAB / f"{LAB}.ipynb"
    homes = tmp_path / "homes"
    hand_in(homes, "complete", release_copy, solution)
    hand_in(homes, "partial", release_copy, {"apply-hello-pod": solution["apply-hello-pod"]})
    hand_in(homes, "unlucky", release_copy, solution)
    collected = lab("collect", str(homes), "--course", str(course), cwd=tmp_path)
    assert collected.returncode == 0, collected.stderr
    assert "collected 3 notebook(s) from 3 student(s)" in collected.stdout

    grades = tmp_path / "grades.csv"
    on_cluster = lab(
        "grade", "00", "--course", str(course), "--student", "complete", "--student", "partial",
        "--reset", "--csv", str(grades), cwd=tmp_path,
    )  # fmt: skip
    assert on_cluster.returncode == 0, on_cluster.stdout + on_cluster.stderr
    rows = rows_of(grades)
    assert {check: rows["complete", check]["points"] for check in ("00.1", "00.2", "00.3", "00.4")} == dict.fromkeys(
        ("00.1", "00.2", "00.3", "00.4"), "1"
    )
    assert [rows["partial", check]["status"] for check in ("00.1", "00.2", "00.3", "00.4")] == [
        "PASSED", "PASSED", "PASSED", "FAILED",
    ]  # fmt: skip
    assert rows["partial", "00.4"]["points"] == "0"
    assert "hello" in rows["partial", "00.4"]["message"]

    # The cluster is down while the third submission is graded (its LAB_HOME has no localcluster).
    down = tmp_path / "nowhere"
    down.mkdir()
    review_csv = tmp_path / "review.csv"
    while_down = lab(
        "grade", "00", "--course", str(course), "--student", "unlucky", "--csv", str(review_csv),
        env={"LAB_HOME": str(down), "KUBECONFIG": str(down / "kubeconfig")}, cwd=tmp_path,
    )  # fmt: skip
    assert while_down.returncode == 1, while_down.stdout + while_down.stderr
    assert "4 for review" in while_down.stdout
    review = rows_of(review_csv)
    for check in ("00.1", "00.2", "00.3", "00.4"):
        assert (review["unlucky", check]["status"], review["unlucky", check]["points"]) == ("REVIEW", "")
        assert review["unlucky", check]["needs_review"] == "yes"

    from nbgrader.api import Gradebook

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # nbgrader's alembic
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        unlucky = gradebook.find_submission(LAB, "unlucky")
        assert unlucky.needs_manual_grade  # what nbgrader's formgrader lists for the instructor
        (notebook,) = unlucky.notebooks
        assert all(grade.needs_manual_grade for grade in notebook.grades)
        assert all(grade.auto_score is None and grade.manual_score is None for grade in notebook.grades)
        assert gradebook.find_submission(LAB, "complete").score == 4
        assert gradebook.find_submission(LAB, "partial").score == 3
    evidence = (course / "evidence" / "partial" / f"{LAB}.jsonl").read_text()
    assert '"id": "00.4"' in evidence and '"status": "FAILED"' in evidence
