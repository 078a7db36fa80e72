"""nbgrader grades a submitted lab 00 from the checks against the live cluster.

The course runs in a temporary directory, the nbgrader way: source → release (generate_assignment)
→ submitted (an attendee's copy of the release, their cells filled in) → autograded, where the hidden
test cells call the checkers. A full submission earns every point, a partial one loses the point of
the step it skipped, graded by that step's check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import checkers
from checkers import Context
from labkit import release
from tests.notebooks.course import attendee_solutions, grade_id

pytestmark = pytest.mark.notebooks

LAB = "00-setup"
#: Seconds one cell may run under autograde (longer than any check's own budget).
CELL_TIMEOUT = 240


def submit(course: Path, student: str, filled: dict[str, str]) -> None:
    """The attendee's copy of the released lab, with the cells in `filled` completed."""
    notebook = nbformat.read(course / "release" / LAB / f"{LAB}.ipynb", as_version=4)
    for cell in notebook.cells:
        cell_id = grade_id(cell)
        if cell_id is not None and cell_id in filled:
            cell.source = filled[cell_id]
    submitted = course / "submitted" / student / LAB
    submitted.mkdir(parents=True)
    nbformat.write(notebook, submitted / f"{LAB}.ipynb")


def nbgrader(course: Path, *args: str) -> None:
    """Run an nbgrader command on the course, with no configuration but ours."""
    config_dir = course.parent / "jupyter-config"
    config_dir.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config_dir),
        # nbgrader migrates its gradebook by running `alembic`, which lives beside this Python.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    finished = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}"],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{finished.stderr}"


def grades(course: Path, student: str) -> dict[str, float]:
    """Points per graded cell of the student's submission, from the course's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        (notebook,) = gradebook.find_submission(LAB, student).notebooks
        return {grade.cell.name: grade.score for grade in notebook.grades}


def error_of(course: Path, student: str, graded_cell: str) -> str | None:
    """The exception name a graded cell raised in the student's autograded notebook, if any."""
    notebook = nbformat.read(course / "autograded" / student / LAB / f"{LAB}.ipynb", as_version=4)
    (cell,) = [c for c in notebook.cells if grade_id(c) == graded_cell]
    errors = [output.ename for output in cell.outputs if output.output_type == "error"]
    return errors[0] if errors else None


def test_autograde_scores_a_full_and_a_partial_submission_from_the_checks(tmp_path: Path, connection: Context) -> None:
    course = tmp_path / "course"
    source = course / "source" / LAB
    source.mkdir(parents=True)
    shutil.copyfile(release.SOLUTIONS / f"{LAB}.ipynb", source / f"{LAB}.ipynb")
    nbgrader(course, "generate_assignment", LAB)

    solution = attendee_solutions(source / f"{LAB}.ipynb")
    assert sorted(solution) == ["apply-hello-pod", "replace-hello-pod"]
    submit(course, "full", solution)
    submit(course, "partial", {"apply-hello-pod": solution["apply-hello-pod"]})

    for student in ("full", "partial"):
        checkers.reset(connection, LAB)
        nbgrader(
            course,
            "autograde",
            LAB,
            f"--student={student}",
            "--create",
            f"--ExecutePreprocessor.timeout={CELL_TIMEOUT}",
        )

    assert grades(course, "full") == {"check-00-1": 1, "check-00-2": 1, "check-00-3": 1, "check-00-4": 1}
    assert grades(course, "partial") == {"check-00-1": 1, "check-00-2": 1, "check-00-3": 1, "check-00-4": 0}
    # The point was lost to the check's verdict (an AssertionError nbgrader counts), not to a crash.
    assert error_of(course, "partial", "check-00-4") == "CheckFailed"
    assert error_of(course, "full", "check-00-4") is None
