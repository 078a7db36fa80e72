"""The instructor's course: release every lab, collect submissions, grade them from live checks.

The course is an nbgrader course directory (`lab grade --course DIR`, default `./course`) in
nbgrader's own layout: `source/` (copied from solutions/) → `release/` → `submitted/<student>/<lab>/`
→ `autograded/`, with `gradebook.db`. Grades come from the checks the hidden test cells run against
the attendee's namespace at grading time; each check's verdict and evidence are kept in
`evidence/<student>/<lab>.jsonl`.

A point is lost only to a FAILED check, which is the attendee's. A check that ERRORs (cluster or
service unreachable), a cell that never ran (a dead kernel, a timeout) or a cell nbgrader zeroed for
output on stderr although its check PASSED is put up for review: its score is cleared and nbgrader's
"needs manual grade" is set, so the formgrader lists it and the export says so, never a silent zero.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.release import LAB_NOTEBOOKS, SOLUTIONS
from labkit.settings import EVIDENCE_FILE_VARIABLE

if TYPE_CHECKING:
    from nbgrader.apps import NbGraderAPI

#: Where the course lives unless `--course` or LAB_COURSE says otherwise (not under LAB_HOME:
#: `lab reset` clears that, and a gradebook must outlive a cluster).
DEFAULT_COURSE = Path("course")
#: Seconds one cell may run while grading: longer than any check's budget and any lab's wait.
CELL_TIMEOUT = 600
#: How a graded cell names its check: `labkit.check("03.2")`.
_CHECK_CALL = re.compile(r"""check\(\s*["'](\d\d\.\d+)["']""")
#: Statuses of a graded cell in reports: a check's own, or REVIEW when no fair score could be given.
PASSED, FAILED, REVIEW = "PASSED", "FAILED", "REVIEW"


class GradingError(RuntimeError):
    """nbgrader could not do what was asked; the message carries its log."""


@dataclass(frozen=True)
class CellGrade:
    """One graded cell of one submission: what its check said and what it is worth."""

    student: str
    lab: str
    cell: str
    check_id: str
    status: str
    #: None while the cell is up for review.
    points: float | None
    max_points: float
    message: str

    @property
    def review(self) -> bool:
        return self.status == REVIEW


@dataclass(frozen=True)
class SubmissionGrade:
    """A student's lab as graded: its cells, how long grading took, and nbgrader's error if it failed."""

    student: str
    lab: str
    cells: tuple[CellGrade, ...]
    seconds: float
    error: str = ""

    @property
    def score(self) -> float:
        return sum(cell.points or 0.0 for cell in self.cells)

    @property
    def max_score(self) -> float:
        return sum(cell.max_points for cell in self.cells)

    @property
    def for_review(self) -> int:
        return sum(1 for cell in self.cells if cell.review)


class Course:
    """An nbgrader course directory holding the labs, the submissions and the gradebook."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    @property
    def gradebook_url(self) -> str:
        return f"sqlite:///{self.root / 'gradebook.db'}"

    def labs(self) -> list[str]:
        """The labs released to this course, in order."""
        release = self.root / "release"
        return sorted(path.name for path in release.iterdir() if path.is_dir()) if release.is_dir() else []

    def release(self, solutions: Path = SOLUTIONS) -> list[str]:
        """Copy every lab of `solutions` into the course and generate its release version."""
        labs = []
        for source in sorted(solutions.glob(LAB_NOTEBOOKS)):
            assignment = self.root / "source" / source.stem
            assignment.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, assignment / source.name)
            labs.append(source.stem)
        if not labs:
            raise GradingError(f"no lab notebooks (NN-slug.ipynb) in {solutions}")
        api = self._api()
        with _environment(_venv_first_on_path()):
            for lab in labs:
                _succeeded(api.generate_assignment(lab), f"generate lab {lab}")
        return labs

    def collect(self, submissions: Path) -> list[tuple[str, str]]:
        """Copy `<submissions>/<student>/.../<lab>.ipynb` into the course (a JupyterHub's home directories).

        Returns (student, lab) for each notebook collected; checkpoints and unknown labs are skipped.
        """
        released = set(self.labs())
        if not released:
            raise GradingError(f"no lab is released in {self.root}: run `lab grade release` first")
        collected = []
        for student_dir in sorted(path for path in submissions.iterdir() if path.is_dir()):
            for notebook in sorted(student_dir.rglob(LAB_NOTEBOOKS)):
                if ".ipynb_checkpoints" in notebook.parts or notebook.stem not in released:
                    continue
                target = self.root / "submitted" / student_dir.name / notebook.stem / notebook.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(notebook, target)
                collected.append((student_dir.name, notebook.stem))
        return collected

    def submissions(self, labs: Sequence[str] = (), students: Sequence[str] = ()) -> list[tuple[str, str]]:
        """(student, lab) of every submission in the course, optionally only those labs and students."""
        submitted = self.root / "submitted"
        found = []
        if submitted.is_dir():
            for student_dir in sorted(submitted.iterdir()):
                for lab_dir in sorted(path for path in student_dir.iterdir() if path.is_dir()):
                    if (not labs or lab_dir.name in labs) and (not students or student_dir.name in students):
                        found.append((student_dir.name, lab_dir.name))
        return found

    def grade(self, student: str, lab: str, *, namespace: str | None = None) -> SubmissionGrade:
        """Autograde one submission against the live cluster (in `namespace`, if given) and judge each cell."""
        started = time.monotonic()
        evidence_file = self.root / "evidence" / student / f"{lab}.jsonl"
        evidence_file.parent.mkdir(parents=True, exist_ok=True)
        evidence_file.unlink(missing_ok=True)
        variables = {EVIDENCE_FILE_VARIABLE: str(evidence_file), **_venv_first_on_path()}
        if namespace:
            variables["LAB_NAMESPACE"] = namespace
        with _environment(variables):
            outcome = self._api().autograde(lab, student)
            cells = self._judge(student, lab, _verdicts(evidence_file))
        error = "" if outcome.get("success") else (outcome.get("error") or outcome.get("log") or "autograde failed")
        return SubmissionGrade(student, lab, tuple(cells), time.monotonic() - started, error)

    def _judge(self, student: str, lab: str, verdicts: dict[str, dict[str, Any]]) -> list[CellGrade]:
        """Each graded cell's status from its check's verdict; cells without a fair score go to review."""
        import nbformat
        from nbgrader.api import Gradebook, MissingEntry

        released = nbformat.read(self.root / "release" / lab / f"{lab}.ipynb", as_version=4)
        cells = []
        with Gradebook(self.gradebook_url) as gradebook:
            for cell in released.cells:
                nbgrader = cell.metadata.get("nbgrader", {})
                if not nbgrader.get("grade"):
                    continue
                name = nbgrader["grade_id"]
                found = _CHECK_CALL.search(cell.source)
                check_id = found.group(1) if found else ""
                verdict = verdicts.get(check_id, {})
                try:
                    grade = gradebook.find_grade(name, lab, lab, student)
                except MissingEntry:
                    grade = None
                max_points = float(nbgrader.get("points", 0))
                points = None if grade is None else grade.auto_score
                status = _status(verdict.get("status"), points, max_points)
                if status == REVIEW and grade is not None:
                    grade.auto_score = None
                    grade.needs_manual_grade = True
                    points = None
                message = verdict.get("message") or "the check did not run: see the autograded notebook"
                cells.append(CellGrade(student, lab, name, check_id, status, points, max_points, message))
            gradebook.db.commit()
        return cells

    def _api(self) -> NbGraderAPI:
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config import Config

        config = Config()
        config.CourseDirectory.root = str(self.root)
        config.CourseDirectory.db_url = self.gradebook_url
        config.ExecutePreprocessor.timeout = CELL_TIMEOUT
        return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _status(verdict: str | None, points: float | None, max_points: float) -> str:
    """PASSED or FAILED when the check said so and the score agrees; REVIEW otherwise."""
    if verdict == "FAILED":
        return FAILED
    if verdict == "PASSED" and points == max_points:
        return PASSED
    return REVIEW  # ERROR, never ran, or a PASSED check nbgrader zeroed (output on stderr)


def _verdicts(evidence_file: Path) -> dict[str, dict[str, Any]]:
    """The last verdict of each check recorded while grading (the hidden test cell's)."""
    verdicts: dict[str, dict[str, Any]] = {}
    if evidence_file.exists():
        for line in evidence_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                verdicts[record["id"]] = record
    return verdicts


def _succeeded(outcome: dict[str, Any], what: str) -> None:
    if not outcome.get("success"):
        raise GradingError(f"nbgrader could not {what}:\n{outcome.get('log') or outcome.get('error', '')}")


def _venv_first_on_path() -> dict[str, str]:
    """PATH with this Python's bin directory first: nbgrader runs `alembic` from it to migrate its gradebook.

    An instructor may run `.venv/bin/lab` without activating the venv, and nbgrader would not find it.
    """
    return {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the grading kernels (they inherit this process's environment)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_csv(grades: Sequence[SubmissionGrade], path: Path) -> None:
    """One row per graded cell: who, which lab and check, the status, the points (empty while in review)."""
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            ["student", "lab", "cell", "check", "status", "points", "max_points", "needs_review", "message"]
        )
        for submission in grades:
            for cell in submission.cells:
                points = "" if cell.points is None else f"{cell.points:g}"
                writer.writerow(
                    [
                        cell.student,
                        cell.lab,
                        cell.cell,
                        cell.check_id,
                        cell.status,
                        points,
                        f"{cell.max_points:g}",
                        "yes" if cell.review else "no",
                        cell.message,
                    ]
                )
