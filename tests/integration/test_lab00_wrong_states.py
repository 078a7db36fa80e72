"""Lab 00 gone wrong the ways a first hour goes: a connection in the wrong namespace, the namespace
deleted, no pod yet, a pod whose image localcluster cannot run, a pod that crashed or printed something
else, the first pod kept where the second was asked for. Each check answers FAILED with the cause
within its diagnosis budget, and its last hint, followed literally, makes it pass.

00.1 (the API answers) cannot be the attendee's fault: the cluster down is ERROR, never FAILED, and
`lab up` brings it back; test_connection_survives.py shows that on a cluster of its own.
The tests run in order on one cluster, each starting from where the previous one's fix left it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from checkers import run_check, select
from checkers.lab00_setup import HELLO_POD, HELLO_READER_POD, POD_NAME
from labkit import apply
from labkit._apply import MANIFESTS
from labkit.connection import Connection, connect
from tests.integration.conftest import LocalCluster, eventually
from tests.integration.lab_support import NAMESPACE, Fixer, beside, diagnosed, follow

pytestmark = pytest.mark.integration


def hello_pod(manifest: str = HELLO_POD, **container: Any) -> dict[str, Any]:
    """The lab's hello pod manifest, its container changed as an attendee's typo would change it."""
    pod: dict[str, Any] = yaml.safe_load((MANIFESTS / manifest).read_text())
    pod["spec"]["containers"][0].update(container)
    return pod


def replace_hello_pod(cluster: LocalCluster, ctx: Connection, pod: dict[str, Any]) -> None:
    cluster.kubectl("delete", "pod", POD_NAME, "--ignore-not-found")
    apply(pod, connection=ctx)


def test_00_2_a_connection_to_another_namespace_is_named(
    cluster: LocalCluster, ctx: Connection, tmp_path: Path
) -> None:
    notebook: dict[str, Any] = {}
    with beside(cluster):
        elsewhere = connect(namespace="default")
    with elsewhere:
        failed = diagnosed(elsewhere, "00.2", "'default'", f"the labs use {NAMESPACE!r}")
        follow(failed.hints[-1], elsewhere, cluster, tmp_path, notebook)
    with notebook["ctx"] as reconnected:
        assert reconnected.namespace == NAMESPACE
        (namespace_check,) = select("00.2")
        assert run_check(namespace_check, reconnected).ok


def test_00_2_a_deleted_namespace_is_named_and_made_again(cluster: LocalCluster, ctx: Connection, fix: Fixer) -> None:
    cluster.kubectl("delete", "namespace", NAMESPACE)
    eventually(lambda: NAMESPACE not in cluster.kubectl("get", "namespaces", "-o", "name").stdout, "the namespace gone")
    failed = diagnosed(ctx, "00.2", f"There is no namespace {NAMESPACE!r}")
    assert fix("00.2", failed).ok


def test_00_3_no_pod_yet_points_to_the_manifest(ctx: Connection, fix: Fixer) -> None:
    failed = diagnosed(ctx, "00.3", f"no pod named {POD_NAME!r}")
    assert "labkit.apply(hello_pod)" in failed.hints[0]
    assert fix("00.3", failed).ok


def test_00_3_an_image_localcluster_cannot_run_is_named_at_once(
    cluster: LocalCluster, ctx: Connection, fix: Fixer
) -> None:
    replace_hello_pod(cluster, ctx, hello_pod(image="busybox:1.36"))
    failed = diagnosed(ctx, "00.3", "busybox:1.36")
    assert "kubectl describe pod" in failed.hints[0] or "Events" in failed.hints[0]
    assert fix("00.3", failed).ok


def test_00_3_a_pod_that_crashed_shows_its_last_words(cluster: LocalCluster, ctx: Connection, fix: Fixer) -> None:
    replace_hello_pod(cluster, ctx, hello_pod(args=["import sys; sys.exit('no greeting today')"]))
    failed = diagnosed(ctx, "00.3", "ran but failed", "no greeting today")
    assert fix("00.3", failed).ok


def test_00_3_a_pod_that_said_something_else_is_named(cluster: LocalCluster, ctx: Connection, fix: Fixer) -> None:
    replace_hello_pod(cluster, ctx, hello_pod(args=["print('hi')"]))
    failed = diagnosed(ctx, "00.3", "do not say 'hello from the bookstore'")
    assert fix("00.3", failed).ok


def test_00_4_the_first_pod_kept_points_to_replacing_it(ctx: Connection, fix: Fixer) -> None:
    """After 00.3 the hello pod has no READER: the attendee has not replaced it yet."""
    failed = diagnosed(ctx, "00.4", "no READER")
    assert HELLO_READER_POD in failed.hints[-1]
    assert fix("00.4", failed).ok


def test_00_4_a_reader_pod_that_does_not_greet_is_named(cluster: LocalCluster, ctx: Connection, fix: Fixer) -> None:
    replace_hello_pod(cluster, ctx, hello_pod(HELLO_READER_POD, args=["print('hello from the bookstore')"]))
    failed = diagnosed(ctx, "00.4", "READER='Ada'", "do not greet Ada")
    assert fix("00.4", failed).ok
