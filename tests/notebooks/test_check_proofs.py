"""A proof, per check of every lab, that it tells the attendee's work apart from its absence.

From the lab's starting state (`lab reset NN` on a fresh cluster), for each check NN.k in order:
`lab check NN.k` FAILS with a hint, then after `lab solve NN.k` it PASSES. A check without a solution
step looks at what the environment provides, so it must PASS from the start. Once every step has
run, the whole lab passes (`lab check NN` exits 0), and `lab reset NN` brings back the starting state.

This is the in-process equivalent of the CLI (the same functions `lab check|solve|reset` call);
tests/integration/test_lab_check.py covers the CLI's exit codes.
"""

from __future__ import annotations

import pytest

import checkers
from checkers import CheckResult, Context, Lab, Status, exit_code, run_check

pytestmark = pytest.mark.notebooks

LABS = list(checkers.labs().values())


def described(result: CheckResult) -> str:
    """The verdict as the attendee reads it, with the evidence (a traceback, for an ERROR)."""
    return f"{result.summary()}\n{result.evidence_text()}"


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.lab_id)
def test_each_check_fails_before_its_step_and_passes_after_it(lab: Lab, connection: Context) -> None:
    checkers.reset(connection, lab.number)
    for one in lab.checks:
        before = run_check(one, connection)
        if one.solution_step is None:
            assert before.status is Status.PASSED, f"{one.check_id} checks the environment:\n{described(before)}"
            continue
        assert before.status is Status.FAILED, f"{one.check_id} before its step:\n{described(before)}"
        assert before.hint, f"{one.check_id} FAILED without a hint toward the fix: {before.message}"
        checkers.solve(connection, one.check_id)
        after = run_check(one, connection)
        assert after.status is Status.PASSED, f"{one.check_id} after its step:\n{described(after)}"

    solved = [run_check(one, connection) for one in lab.checks]
    assert exit_code(solved) == 0, "\n\n".join(described(r) for r in solved if not r.ok)

    checkers.reset(connection, lab.number)
    for one in lab.checks:
        if one.solution_step is not None:
            again = run_check(one, connection)
            assert again.status is Status.FAILED, f"{one.check_id} after `lab reset {lab.number}`:\n{described(again)}"
