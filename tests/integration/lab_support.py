"""What the lab 01 and 02 integration tests share: the notebook's connection to a test cluster, the step proof."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from checkers import Context, Status, find_lab, run_check
from labkit import apply
from labkit.connection import Connection, connect
from tests.integration.conftest import LocalCluster

NAMESPACE = "bookstore"


@contextmanager
def connection_to(cluster: LocalCluster) -> Iterator[Connection]:
    """`labkit.connect()` as a notebook beside `cluster` gets it: its LAB_HOME only, with the lab namespace."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LAB_HOME", str(cluster.home))
        for variable in ("KUBECONFIG", "LAB_CONTEXT", "LAB_NAMESPACE"):
            env.delenv(variable, raising=False)
        connection = connect()
    with connection as ctx:
        apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}, connection=ctx)
        yield ctx


def prove_each_step(ctx: Context, lab: str) -> list[str]:
    """For every check of `lab` in order: it FAILS, its solution step runs, then it PASSES.

    Returns the check ids proven; an assertion names the check and its verdict when one misbehaves.
    """
    proven = []
    for step in find_lab(lab).checks:
        before = run_check(step, ctx)
        assert before.status is Status.FAILED, f"{step.check_id} before its step: {before.summary()}"
        assert step.solution_step is not None, f"{step.check_id} has no solution step"
        step.solution_step(ctx)
        after = run_check(step, ctx)
        explained = f"{after.summary()}\n{after.evidence_text()}"
        assert after.status is Status.PASSED, f"{step.check_id} after its step: {explained}"
        proven.append(step.check_id)
    return proven


def verdicts(ctx: Context, lab: str) -> dict[str, Status]:
    return {step.check_id: run_check(step, ctx).status for step in find_lab(lab).checks}
