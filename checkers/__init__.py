"""The checkers: every step of every lab is a check against the live cluster and services.

A lab's module (checkers/labNN_slug.py) registers its checks with `@check("NN.k", title=...)`. A
check receives a `Context` and returns a `CheckResult`: PASSED or FAILED speak about the attendee's
work, ERROR about the environment (cluster unreachable, a crash, a timeout) and never costs marks.
`lab check|solve|reset` (labkit.cli), `labkit.check` in notebooks and CI all run them from here.

A check with a solution step (`@my_check.solution`) is the attendee's work: CI proves it FAILS on the
lab's starting state and PASSES once its step has run. A check without one looks at what the
environment provides (the API answers, the namespace exists): CI proves it PASSES from the start.
"""

from __future__ import annotations

from checkers._context import Context
from checkers._registry import (
    CHECK_ID_PATTERN,
    REGISTRY,
    Check,
    Lab,
    Registry,
    UnknownCheck,
    check,
    find_lab,
    labs,
    select,
)
from checkers._result import CheckEnvironmentError, CheckFailed, CheckResult, Status, exit_code
from checkers._runner import (
    EnvironmentUnavailable,
    environment_problem,
    observe,
    open_context,
    run_check,
    unreachable,
)

__all__ = [
    "CHECK_ID_PATTERN",
    "REGISTRY",
    "Check",
    "CheckEnvironmentError",
    "CheckFailed",
    "CheckResult",
    "Context",
    "EnvironmentUnavailable",
    "Lab",
    "Registry",
    "Status",
    "UnknownCheck",
    "check",
    "environment_problem",
    "exit_code",
    "find_lab",
    "labs",
    "observe",
    "open_context",
    "reset",
    "run_check",
    "select",
    "solve",
    "unreachable",
]


def solve(ctx: Context, selector: str) -> list[Check]:
    """Do what the solution does, step by step, up to and including the check `selector` names.

    "03" solves the whole lab; "03.2" stops after step 2, so CI can prove each check fails before
    its step and passes after it. Returns the checks whose steps ran.
    """
    lab = find_lab(selector.split(".")[0])
    last = select(selector)[-1]
    done: list[Check] = []
    for step in lab.checks:
        if step.solution_step is not None:
            step.solution_step(ctx)
        done.append(step)
        if step is last:
            break
    return done


def reset(ctx: Context, selector: str) -> None:
    """Undo the lab (its module's `reset`), so it can be done again from the start."""
    find_lab(selector).module.reset(ctx)
