"""What the labs' integration tests share: the notebook's connection to a test cluster, the step proof, and
wrong states diagnosed with their hints followed (conftest.py offers the connection and the fixer as fixtures)."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

import labkit
from checkers import CheckResult, Context, Status, find_lab, run_check, select
from labkit import apply
from labkit.connection import Connection, connect, forget_default, make_default
from labkit.settings import PROJECT_ROOT, Settings
from localcluster.testing import KUBECTL
from localcluster.testing import LocalClusterRunner as LocalCluster

NAMESPACE = "bookstore"


@contextmanager
def beside(cluster: LocalCluster) -> Iterator[None]:
    """The environment of a notebook beside `cluster`: its LAB_HOME only, no KUBECONFIG nor LAB_* choices."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LAB_HOME", str(cluster.home))
        for variable in ("KUBECONFIG", "LAB_CONTEXT", "LAB_NAMESPACE"):
            env.delenv(variable, raising=False)
        yield


@contextmanager
def connection_to(cluster: LocalCluster, namespace: str = NAMESPACE) -> Iterator[Connection]:
    """`labkit.connect()` as a notebook beside `cluster` gets it, working in `namespace` (made if missing)."""
    with beside(cluster):
        connection = connect(namespace=namespace)
    with connection as ctx:
        apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, connection=ctx)
        yield ctx


def kubeconfig_in(cluster: LocalCluster, namespace: str, workdir: Path) -> Path:
    """A copy of `cluster`'s kubeconfig (in `workdir`) whose context works in `namespace`: the kubectl of an
    attendee working there (`kubectl config set-context --current --namespace=...`)."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in config["contexts"]:
        if entry["name"] == config["current-context"]:
            entry["context"]["namespace"] = namespace
    path = workdir / ".kube" / "config"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


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


# --- A wrong state diagnosed, and its hint followed ------------------------------------------------

#: The time a check may take to answer FAILED with the cause on a wrong state (the issue's goal).
DIAGNOSIS_BUDGET = 10.0
TIMES = PROJECT_ROOT / "test-artifacts" / "diagnosis-times.jsonl"
_CODE_SPAN = re.compile(r"`([^`]+)`")


def diagnosed(ctx: Context, check_id: str, *cause: str) -> CheckResult:
    """Run the check with only DIAGNOSIS_BUDGET seconds: it must answer FAILED naming the cause.

    A check that merely ran out of time says "still not ..."; one that saw the state cannot become
    right by waiting names the cause, which is what this asserts (no timing assertion needed). How
    long it took is kept in test-artifacts/diagnosis-times.jsonl, to read, never to assert.
    """
    (one,) = select(check_id)
    result = run_check(dataclasses.replace(one, timeout=DIAGNOSIS_BUDGET), ctx, grace=2.0)
    TIMES.parent.mkdir(parents=True, exist_ok=True)
    with TIMES.open("a", encoding="utf-8") as times:
        times.write(
            json.dumps({"check": check_id, "seconds": round(result.duration, 2), "message": result.message}) + "\n"
        )
    explained = f"{result.summary()}\n{result.evidence_text()}"
    assert result.status is Status.FAILED, f"{check_id} on a wrong state: {explained}"
    assert "still not" not in result.message.lower(), f"{check_id} waited instead of diagnosing: {explained}"
    for words in cause:
        assert words in result.message, f"{check_id} does not name {words!r}: {explained}"
    assert len(result.hints) >= 2, f"{check_id}: no hint ladder (where to look, then the fix): {result.hints}"
    return result


def follow(
    hint: str, ctx: Context, cluster: LocalCluster, workdir: Path, notebook: dict[str, Any] | None = None
) -> list[str]:
    """Do literally what a hint says: run each code span in it, in order, as the attendee would.

    `kubectl ...` spans run in a shell, as typed in a terminal (KUBECONFIG set to work in `ctx`'s
    namespace, the project's kubectl first on PATH, an unrelated working directory); spans that call
    something (`ctx.http.post(...)`, `labkit.apply(...)`) run as notebook code with the notebook's names,
    in `notebook` when given (so the caller sees what they assigned: `ctx = labkit.connect(...)`). Other
    spans only name things. Returns the spans run.
    """
    kubeconfig = kubeconfig_in(cluster, ctx.namespace, workdir)
    ran = []
    for span in _CODE_SPAN.findall(hint):
        if span.startswith("kubectl "):
            env = {
                **os.environ,
                "KUBECONFIG": str(kubeconfig),
                "PATH": f"{KUBECTL.parent}{os.pathsep}{os.environ['PATH']}",
            }
            done = subprocess.run(
                ["bash", "-c", span], cwd=workdir, env=env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, f"the hint's `{span}` failed:\n{done.stderr}"
        elif "(" in span:
            names = notebook if notebook is not None else {}
            names.setdefault("ctx", ctx)
            names.setdefault("labkit", labkit)
            names.setdefault(
                "kubectl",
                functools.partial(labkit.kubectl, settings=Settings(namespace=ctx.namespace, kubeconfig=kubeconfig)),
            )
            with beside(cluster), notebook_default(ctx):
                exec(span, names)  # the hint's own code, run as the attendee would run it
        else:
            continue
        ran.append(span)
    assert ran, f"the hint has nothing to do: {hint!r}"
    return ran


@contextmanager
def notebook_default(ctx: Context) -> Iterator[None]:
    """`ctx` as the notebook's connection: labkit helpers called without one (`labkit.admin_headers()`) use it."""
    make_default(ctx)
    try:
        yield
    finally:
        forget_default(ctx)


def follow_until_passed(
    ctx: Context, check_id: str, cluster: LocalCluster, workdir: Path, first: CheckResult, rounds: int = 3
) -> CheckResult:
    """Follow the last hint of each FAILED verdict (each fixes the cause it names) until the check PASSES."""
    (one,) = select(check_id)
    result = first
    for _ in range(rounds):
        follow(result.hints[-1], ctx, cluster, workdir)
        result = run_check(one, ctx)
        if result.ok:
            return result
        assert result.status is Status.FAILED, f"{check_id} after following its hint: {result.summary()}"
    raise AssertionError(f"{check_id} still FAILED after following {rounds} hints: {result.summary()}")


#: Follows a FAILED verdict's hints until its check passes: `fix("01.2", failed)`.
Fixer = Callable[[str, CheckResult], CheckResult]


def fixer(cluster: LocalCluster, ctx: Context, workdir: Path) -> Fixer:
    """A Fixer on `cluster`, running kubectl hints from `workdir` (not the project's directory)."""
    return lambda check_id, failed: follow_until_passed(ctx, check_id, cluster, workdir, failed)
