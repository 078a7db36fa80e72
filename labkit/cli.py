"""The course frame's commands: `lab check`, `lab solve` and `lab reset` over the checkers, `lab release`
over nbgrader, `lab jupyter` (JupyterLab as the workshop runs it) and the instructor's (labkit.course_cli).

`COMMANDS` is what the `lab` command (localcluster.cli) attaches; `python -m labkit.cli` runs them
alone. Imports of the kubernetes client happen inside the commands, so `lab --help` stays instant.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from labkit import course_cli

if TYPE_CHECKING:
    from checkers import Check, CheckResult, Context

STATUS_COLOURS = {"PASSED": "green", "FAILED": "red", "ERROR": "yellow"}
INDENT = " " * 14


def connect_to_cluster() -> Context:
    """The notebook's connection (labkit.connect), so the terminal sees what the notebook sees."""
    from labkit.connection import connect

    return connect()


def _select(selector: str) -> list[Check]:
    from checkers import UnknownCheck, select

    try:
        return select(selector)
    except UnknownCheck as exc:
        raise click.BadParameter(str(exc), param_hint="LAB_OR_CHECK") from exc


def _open_context_or_exit(as_json: bool = False, checks: list[Check] | None = None) -> Context:
    """Connect, or exit 2 with one line (and, for --json, the ERROR results) when the cluster is down."""
    from checkers import EnvironmentUnavailable, open_context, unreachable

    try:
        return open_context(connect_to_cluster)
    except EnvironmentUnavailable as problem:
        if as_json and checks is not None:
            click.echo(_json_report([unreachable(one, problem) for one in checks]))
        click.echo(str(problem), err=True)
        sys.exit(2)


def _json_report(results: list[CheckResult]) -> str:
    from checkers import exit_code

    return json.dumps(
        {"exit_code": exit_code(results), "results": [r.to_dict() for r in results]}, indent=2, ensure_ascii=False
    )


def _table_rows(result: CheckResult) -> Iterator[str]:
    status = click.style(f"{result.status!s:<6}", fg=STATUS_COLOURS[str(result.status)], bold=True)
    yield f"{result.check_id:<5} {status}  {result.title}"
    yield f"{INDENT}{result.message}"
    if result.hint:
        yield f"{INDENT}hint: {result.hint}"
    if len(result.hints) > 1:
        yield f"{INDENT}stuck? `lab hint {result.check_id}` gives the next hint"


def _summary(results: list[CheckResult], seconds: float) -> str:
    counts = {status: sum(1 for r in results if str(r.status) == status) for status in STATUS_COLOURS}
    parts = ", ".join(f"{n} {status.lower()}" for status, n in counts.items() if n)
    return f"{len(results)} check{'s' if len(results) != 1 else ''}: {parts} ({seconds:.1f}s)"


@click.command("check")
@click.argument("selector", metavar="LAB_OR_CHECK")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON, for machines.")
def check_command(selector: str, as_json: bool) -> None:
    """Check a lab ("00", "00-setup") or one step ("00.2") against the live cluster.

    Exit status: 0 all passed, 1 something to fix, 2 the environment failed (never your fault).
    """
    from checkers import exit_code, run_check
    from labkit._progress import TerminalProgress

    started = time.monotonic()
    checks = _select(selector)
    ctx = _open_context_or_exit(as_json, checks)
    results: list[CheckResult] = []
    for one in checks:
        # What the check waits for goes to stderr, live, so stdout stays the verdicts (and --json parses).
        waiting = TerminalProgress(title=one.check_id)
        result = run_check(one, ctx, progress=waiting)
        waiting.clear()
        results.append(result)
        if not as_json:
            click.echo("\n".join(_table_rows(result)))
    if as_json:
        click.echo(_json_report(results))
    else:
        click.echo(_summary(results, time.monotonic() - started))
    sys.exit(exit_code(results))


@click.command("hint")
@click.argument("check_id", metavar="CHECK")
@click.argument("level", type=click.IntRange(1), default=2, required=False)
def hint_command(check_id: str, level: int) -> None:
    """Show hint LEVEL (default 2: the one after `lab check`'s) of a check's current verdict.

    Hints climb from where to look to the literal fix; the last one, followed as written, repairs it.
    """
    from checkers import CHECK_ID_PATTERN, run_check

    if not CHECK_ID_PATTERN.match(check_id):
        raise click.BadParameter(f"one check id like 02.6, not {check_id!r}", param_hint="CHECK")
    (one,) = _select(check_id)
    result = run_check(one, _open_context_or_exit())
    if result.ok:
        click.echo(f"{check_id} passes: nothing to fix.")
        return
    if not result.hints:
        click.echo(f"{check_id}: {result.message} (no hint)")
        return
    shown = min(level, len(result.hints))
    last = " (the last one)" if shown == len(result.hints) else f" (next: `lab hint {check_id} {shown + 1}`)"
    click.echo(f"{check_id}: {result.message}")
    click.echo(f"{INDENT}hint {shown} of {len(result.hints)}{last}: {result.hints[shown - 1]}")


def _run_lab_action(action: str, selector: str) -> None:
    """Run solve or reset, turning the ways they fail into one line and an exit status."""
    from checkers import environment_problem, reset, solve
    from labkit import ApplyError, ManifestError

    _select(selector)
    ctx = _open_context_or_exit()
    try:
        if action == "solve":
            for step in solve(ctx, selector):
                click.echo(f"{step.check_id}  done: {step.title}")
        else:
            reset(ctx, selector)
            click.echo(f"lab {selector} reset")
    except (ApplyError, ManifestError) as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:  # the environment failing mid-way: one line, exit 2, as for `lab check`
        problem = environment_problem(exc)
        if problem is None:
            raise
        click.echo(f"{action} stopped: {problem}", err=True)
        sys.exit(2)


@click.command("solve")
@click.argument("selector", metavar="LAB_OR_CHECK")
def solve_command(selector: str) -> None:
    """Do what the solution does, for a whole lab ("03") or up to one step ("03.2")."""
    _run_lab_action("solve", selector)


@click.command("reset")
@click.argument("selector", metavar="LAB")
def reset_command(selector: str) -> None:
    """Undo a lab so it can be done again from the start."""
    _run_lab_action("reset", selector)


@click.command("release")
@click.option("--check", "only_check", is_flag=True, help="Only report whether labs/ is up to date.")
@click.option("--solutions", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option("--labs", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option(
    "--course",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Also release every lab into this nbgrader course directory, for `lab collect` and `lab grade`.",
)
def release_command(only_check: bool, solutions: Path | None, labs: Path | None, course: Path | None) -> None:
    """Generate labs/ from solutions/ with nbgrader (solutions and hidden checks removed)."""
    from labkit import release
    from labkit.grading import Course, GradingError

    solutions = solutions or release.SOLUTIONS
    labs = labs or release.LABS
    try:
        if only_check:
            stale = release.stale_labs(solutions, labs)
            if stale:
                raise click.ClickException(f"labs/ is out of date for: {', '.join(stale)}; run `lab release`")
            click.echo("labs/ is up to date")
            return
        for written in release.release(solutions, labs):
            click.echo(f"wrote {written}")
        if course is not None:
            released = Course(course).release(solutions)
            click.echo(f"released {', '.join(released)} to the course in {course}")
    except (release.ReleaseError, GradingError) as exc:
        raise click.ClickException(str(exc)) from exc


#: The attendee's Jupyter configuration: the workshop's server extensions (the bookstore's pages under
#: /bookstore/, terminals with the project's `lab` and `kubectl` first on PATH) on, nbgrader's authoring
#: UI (menu, create-assignment, formgrader, course and assignment lists) off. Binder and JupyterHub
#: images use the same directory (JUPYTER_CONFIG_PATH, see infra/README.md).
JUPYTER_CONFIG = Path(__file__).resolve().parent / "jupyter-config"


def jupyter_arguments(root: Path) -> list[str]:
    """`jupyter lab`'s arguments as the workshop runs it (`make run`, the browser tests)."""
    return [
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        # CI, Binder and containers run as root; JupyterLab refuses root unless told.
        "--ServerApp.allow_root=True",
    ]


def jupyter_environment(environ: dict[str, str]) -> dict[str, str]:
    """The server's environment: the attendee's Jupyter configuration, the project's tools first on PATH,
    KUBECONFIG for the cluster `connect()` finds, so kernels and terminals (kubectl there too) talk to it."""
    from labkit.connection import kubectl_target
    from labkit.jupyter_terminal import TOOLS

    env = dict(environ)
    env["PATH"] = os.pathsep.join([str(TOOLS), env.get("PATH", "")])
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(filter(None, [str(JUPYTER_CONFIG), env.get("JUPYTER_CONFIG_PATH")]))
    paths, _ = kubectl_target()
    if paths and not env.get("KUBECONFIG"):
        env["KUBECONFIG"] = os.pathsep.join(str(path) for path in paths)
    return env


@click.command("jupyter", context_settings={"ignore_unknown_options": True})
@click.option(
    "--root", type=click.Path(path_type=Path, file_okay=False, exists=True), default=Path("."), show_default=True
)
@click.argument("jupyter_args", nargs=-1, type=click.UNPROCESSED)
def jupyter_command(root: Path, jupyter_args: tuple[str, ...]) -> None:
    """Open JupyterLab on ROOT as the workshop runs it (`make run` does this); other arguments go to jupyter lab.

    The bookstore's pages are served under /bookstore/<service>/, terminals have the project's `lab` and
    `kubectl` first on PATH, and kernels, terminals and kubectl reach the cluster `labkit.connect()` finds.
    """
    arguments = [sys.executable, "-m", "jupyter", "lab", *jupyter_arguments(root.resolve()), *jupyter_args]
    os.execve(sys.executable, arguments, jupyter_environment(dict(os.environ)))


#: What the main `lab` group attaches (`for command in COMMANDS: main.add_command(command)`).
COMMANDS = (
    check_command,
    hint_command,
    solve_command,
    reset_command,
    release_command,
    jupyter_command,
    *course_cli.COMMANDS,
)


@click.group()
def frame() -> None:
    """The course frame's commands, runnable alone: python -m labkit.cli check 00."""


for _command in COMMANDS:
    frame.add_command(_command)

if __name__ == "__main__":
    frame()
