"""The instructor's commands: `lab collect`, `lab grade` and `lab progress`.

    lab release --course course          # labs/ and the nbgrader course's release (every lab)
    lab collect /home --course course     # submissions from a directory of homes (JupyterHub)
    lab grade --course course --csv grades.csv
    lab progress                          # which checks pass now, per attendee namespace

Heavy imports (nbgrader, the kubernetes client) happen inside the commands so `lab --help` stays instant.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from labkit.grading import DEFAULT_COURSE

COURSE_OPTION = click.option(
    "--course",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_COURSE,
    envvar="LAB_COURSE",
    show_default=True,
    help="The nbgrader course directory (gradebook, submissions). Also LAB_COURSE.",
)


@click.command("collect")
@click.argument("submissions", type=click.Path(path_type=Path, file_okay=False, exists=True))
@COURSE_OPTION
def collect_command(submissions: Path, course: Path) -> None:
    """Collect submissions from SUBMISSIONS/<student>/**/NN-slug.ipynb into the course.

    On JupyterHub, SUBMISSIONS is the directory of the users' home directories (each user's work copy
    of labs/); anything laid out one directory per student works. Collecting again replaces a
    student's earlier copy.
    """
    from labkit.grading import Course, GradingError

    try:
        collected = Course(course).collect(submissions)
    except GradingError as exc:
        raise click.ClickException(str(exc)) from exc
    students = sorted({student for student, _ in collected})
    click.echo(f"collected {len(collected)} notebook(s) from {len(students)} student(s) into {course}")


@click.command("grade")
@click.argument("lab_ids", nargs=-1, metavar="[LAB]...")
@COURSE_OPTION
@click.option("--student", "students", multiple=True, help="Grade only this student (repeatable).")
@click.option(
    "--namespace",
    "namespace_template",
    default=None,
    help="Each student's namespace, e.g. \"{student}\" (default: the connection's own namespace).",
)
@click.option("--reset", is_flag=True, help="Reset each lab before grading each submission (one shared cluster).")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False), help="Write the grades here.")
def grade_command(
    lab_ids: tuple[str, ...],
    course: Path,
    students: tuple[str, ...],
    namespace_template: str | None,
    reset: bool,
    csv_path: Path | None,
) -> None:
    """Autograde the submissions (all, or those of LAB...) from checks against the live cluster.

    A point is lost only to a FAILED check. A check that could not look (ERROR), a cell that never ran
    or was zeroed for stray stderr output is marked for review in the gradebook, not scored zero.
    Exit status: 0 graded, 1 some cells need review, 2 nothing to grade or nbgrader failed.
    """
    from labkit.grading import Course, write_csv

    graded_course = Course(course)
    chosen = graded_course.submissions(_lab_ids(lab_ids), students)
    if not chosen:
        click.echo(f"nothing to grade in {course}: collect submissions first (`lab collect`)", err=True)
        sys.exit(2)
    grades = []
    started = time.monotonic()
    with click.progressbar(
        chosen, label="grading", item_show_func=lambda item: f"{item[0]} {item[1]}" if item else ""
    ) as bar:
        for student, lab in bar:
            namespace = namespace_template.format(student=student) if namespace_template else None
            if reset:
                _reset_lab(lab, namespace)
            grades.append(graded_course.grade(student, lab, namespace=namespace))
    for submission in grades:
        review = f", {submission.for_review} for review" if submission.for_review else ""
        failed = f"  (nbgrader: {submission.error.strip().splitlines()[-1]})" if submission.error else ""
        click.echo(
            f"{submission.student:<16} {submission.lab:<20} "
            f"{submission.score:g}/{submission.max_score:g}{review}  {submission.seconds:.1f}s{failed}"
        )
    if csv_path is not None:
        write_csv(grades, csv_path)
        click.echo(f"wrote {csv_path}")
    click.echo(
        f"{len(grades)} submission(s) graded in {time.monotonic() - started:.1f}s; gradebook {course}/gradebook.db"
    )
    sys.exit(1 if any(submission.for_review for submission in grades) else 0)


def _lab_ids(selectors: tuple[str, ...]) -> list[str]:
    """Lab ids ("03-transactions") from "03" or "03-transactions"."""
    from checkers import UnknownCheck, find_lab

    try:
        return [find_lab(selector).lab_id for selector in selectors]
    except UnknownCheck as exc:
        raise click.BadParameter(str(exc), param_hint="LAB") from exc


def _reset_lab(lab: str, namespace: str | None) -> None:
    from checkers import reset
    from labkit.connection import connect

    with connect(namespace=namespace) as ctx:
        reset(ctx, lab)


@click.command("progress")
@click.argument("lab_ids", nargs=-1, metavar="[LAB]...")
@click.option("--json", "as_json", is_flag=True, help="Print the progress as JSON, for scripts.")
@click.option("--watch", type=float, default=None, metavar="SECONDS", help="Refresh every SECONDS until Ctrl-C.")
def progress_command(lab_ids: tuple[str, ...], as_json: bool, watch: float | None) -> None:
    """Which checks pass right now, per attendee namespace (all labs, or LAB...).

    Attendees are the namespaces labelled bookstore.workshop/attendee that you can read; on
    localcluster, the lab namespace. ✔ passed, ✘ failed, ⚠ could not look.
    """
    from checkers import EnvironmentUnavailable, open_context
    from labkit.connection import connect
    from labkit.progress import attendees, course_checks, measure, table

    checks = course_checks(_lab_ids(lab_ids))
    try:
        ctx = open_context(connect)
    except EnvironmentUnavailable as problem:
        click.echo(str(problem), err=True)
        sys.exit(2)
    with ctx:
        people = attendees(ctx)
    while True:
        progress = measure(lambda namespace: connect(namespace=namespace), people, checks)
        if as_json:
            click.echo(json.dumps([row.to_dict() for row in progress], indent=2, ensure_ascii=False))
        else:
            if watch:
                click.clear()
            click.echo(table(progress, checks))
        if not watch:
            return
        time.sleep(watch)  # the refresh period of a live view the user asked for, not a wait for state


#: What the main `lab` group attaches beside the frame's commands.
COMMANDS: tuple[click.Command, ...] = (collect_command, grade_command, progress_command)
