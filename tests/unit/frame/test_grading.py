"""Grading rules that need no kernel: which verdicts cost a point, what is collected, what is exported."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from labkit.grading import PASSED, REVIEW, CellGrade, Course, GradingError, SubmissionGrade, _status, write_csv


@pytest.mark.parametrize(
    ("verdict", "points", "expected"),
    [
        ("PASSED", 1.0, "PASSED"),
        ("FAILED", 0.0, "FAILED"),
        ("ERROR", 0.0, "REVIEW"),  # the environment's failure is never the attendee's zero
        (None, 0.0, "REVIEW"),  # the check never ran: a dead kernel, a timeout before it
        ("PASSED", 0.0, "REVIEW"),  # nbgrader zeroed a passing cell (it wrote to stderr)
    ],
)
def test_a_point_is_lost_only_to_a_failed_check(verdict: str | None, points: float, expected: str) -> None:
    assert _status(verdict, points, 1.0) == expected


def test_collect_takes_each_student_s_lab_notebooks(tmp_path: Path) -> None:
    course = Course(tmp_path / "course")
    (course.root / "release" / "00-setup").mkdir(parents=True)
    homes = tmp_path / "homes"
    for path in (
        "ada/workspace/00-setup.ipynb",
        "ada/workspace/.ipynb_checkpoints/00-setup.ipynb",
        "ada/workspace/99-unknown.ipynb",
        "grace/00-setup.ipynb",
    ):
        (homes / path).parent.mkdir(parents=True, exist_ok=True)
        (homes / path).write_text("{}")
    assert course.collect(homes) == [("ada", "00-setup"), ("grace", "00-setup")]
    assert course.submissions() == [("ada", "00-setup"), ("grace", "00-setup")]
    assert course.submissions(students=["grace"]) == [("grace", "00-setup")]


def test_collect_before_release_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(GradingError, match="no lab is released"):
        Course(tmp_path / "course").collect(tmp_path)


def test_the_csv_shows_review_cells_without_points(tmp_path: Path) -> None:
    cells = (
        CellGrade("ada", "00-setup", "check-00-1", "00.1", PASSED, 1.0, 1.0, "The API answers"),
        CellGrade("ada", "00-setup", "check-00-2", "00.2", REVIEW, None, 1.0, "could not look"),
    )
    submission = SubmissionGrade("ada", "00-setup", cells, seconds=1.0)
    assert (submission.score, submission.max_score, submission.for_review) == (1.0, 2.0, 1)
    path = tmp_path / "grades.csv"
    write_csv([submission], path)
    with path.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert [(row["check"], row["points"], row["needs_review"]) for row in rows] == [
        ("00.1", "1", "no"),
        ("00.2", "", "yes"),
    ]
