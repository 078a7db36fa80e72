"""The course as a whole: every solutions notebook in order under papermill, and grading a class.

Run: python -m bench.bench_course [--submissions 40] [--skip-course]
     (loopback only; one localcluster in a temporary LAB_HOME; about 10 minutes on 2 cores)

- course: solutions/00 → 05 top to bottom on one cluster, as one attendee works through the day
  (goal: the whole course in at most 5 minutes), with each lab's time;
- grading: N submissions of lab 00 (complete ones) autograded by `lab grade` from live checks,
  the time per submission and for all N (each autograde starts a kernel and re-runs the notebook).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nbformat

from bench._stats import median, percentile, report
from bench.bench_lab00 import pointing_at
from labkit.grading import Course
from labkit.release import SOLUTIONS
from localcluster.testing import LocalClusterRunner

GRADED_LAB = "00-setup"


def course_seconds(workdir: Path) -> dict[str, float]:
    """Wall time of each solutions notebook, in course order, on the one cluster."""
    import papermill

    seconds = {}
    for notebook in sorted(SOLUTIONS.glob("[0-9][0-9]-*.ipynb")):
        started = time.perf_counter()
        papermill.execute_notebook(
            notebook, workdir / notebook.name, cwd=workdir, kernel_name="python3", progress_bar=False
        )
        seconds[notebook.stem] = time.perf_counter() - started
    return seconds


def grading_seconds(workdir: Path, submissions: int) -> list[float]:
    """Seconds per autograded submission of lab 00, each a complete one, graded one after another."""
    from checkers import reset
    from labkit.connection import connect
    from tests.notebooks.course import attendee_solutions, grade_id

    course = Course(workdir / "course")
    course.release()
    released = nbformat.read(course.root / "release" / GRADED_LAB / f"{GRADED_LAB}.ipynb", as_version=4)
    solution = attendee_solutions(SOLUTIONS / f"{GRADED_LAB}.ipynb")
    for cell in released.cells:
        if (cell_id := grade_id(cell)) in solution:
            cell.source = solution[cell_id]
    homes = workdir / "homes"
    for index in range(submissions):
        copy = homes / f"attendee{index:02d}" / f"{GRADED_LAB}.ipynb"
        copy.parent.mkdir(parents=True)
        nbformat.write(released, copy)
    course.collect(homes)
    samples = []
    for student, lab in course.submissions():
        with connect() as ctx:
            reset(ctx, lab)
        graded = course.grade(student, lab)
        if graded.score != graded.max_score:
            raise RuntimeError(f"{student}: {graded.score}/{graded.max_score} for a complete submission")
        samples.append(graded.seconds)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=40, help="submissions of lab 00 to grade (default 40)")
    parser.add_argument("--skip-course", action="store_true", help="only the grading figures")
    options = parser.parse_args([] if __name__ != "__main__" else None)
    with tempfile.TemporaryDirectory(prefix="bench-course-") as root:
        workdir = Path(root)
        with LocalClusterRunner(workdir / "home") as cluster, pointing_at(cluster):
            if not options.skip_course:
                per_lab = course_seconds(workdir)
                for lab, seconds in per_lab.items():
                    report(f"course papermill {lab}", seconds, "s")
                report("course papermill whole course", sum(per_lab.values()), "s")
        with LocalClusterRunner(workdir / "grading-home") as cluster, pointing_at(cluster):
            started = time.perf_counter()
            samples = grading_seconds(workdir, options.submissions)
            report("grading per submission p50", median(samples), "s")
            report("grading per submission p99", percentile(samples, 0.99), "s")
            report(f"grading {len(samples)} submissions", time.perf_counter() - started, "s")


if __name__ == "__main__":
    main()
