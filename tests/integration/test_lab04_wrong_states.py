"""Lab 04 put in the wrong states attendees really reach: each check answers FAILED with the cause
within its diagnosis budget, and following its last hint literally makes it pass.

Each test works in a namespace of its own on the module's one cluster (a cluster per test would cost
far more), and first does there the lab's steps its wrong state comes after: no test depends on
another, or on the order they run in. Revision names are read from the cluster; the lab's first two
steps give v1 the name the lesson files pin (storefront-00002).

The cluster's `scale-to-zero-grace-period` is 2 s instead of Knative's 30 s, so that waiting for
zero takes seconds (an environment setting of knative-serving, not something an attendee sets).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import checkers
from checkers import lab04_serverless as lab04
from checkers._api import read_or_none
from labkit import apply
from labkit.admin import ensure_admin_secret
from labkit.connection import Connection
from labkit.kustomize import overlay
from tests.integration.conftest import LocalCluster, eventually
from tests.integration.lab_support import Fixer, connection_to, diagnosed, follow

pytestmark = pytest.mark.integration

#: Knative's grace period shortened for this cluster, and the cap an attendee put on the storefront.
SHORT_GRACE = '{"data":{"scale-to-zero-grace-period":"2s"}}'
ONE_POD_AT_MOST = '{"spec":{"template":{"metadata":{"annotations":{"autoscaling.knative.dev/max-scale":"1"}}}}}'


@pytest.fixture(scope="module")
def short_grace(cluster: LocalCluster) -> LocalCluster:
    """The module's cluster, whose idle revisions go to zero 2 s after their window."""
    cluster.kubectl("patch", "configmap/config-autoscaler", "-n", "knative-serving", "--type=merge", "-p", SHORT_GRACE)
    return cluster


@pytest.fixture
def ctx(short_grace: LocalCluster, request: pytest.FixtureRequest) -> Iterator[Connection]:
    """The notebook's connection, working in a namespace of the test's own (named after it), deleted afterwards."""
    namespace = re.sub(r"[^a-z0-9]+", "-", request.node.name.removeprefix("test_").lower())[:63].strip("-")
    with connection_to(short_grace, namespace) as connection:
        yield connection
        connection.core.delete_namespace(namespace)
        eventually(
            lambda: read_or_none(lambda: connection.core.read_namespace(namespace)) is None,
            f"namespace {namespace} to be gone",
            timeout=60,
        )


def knative_storefront(name: str = lab04.AUTOSCALING) -> dict[str, Any]:
    """The storefront's Knative Service as a lesson file has it, to be changed the way an attendee might."""
    (service,) = lab04.lesson(name)
    return copy.deepcopy(service)


def base_storefront() -> dict[str, Any]:
    (service,) = (obj for obj in overlay(lab04.LAB_ID) if obj["apiVersion"] == "serving.knative.dev/v1")
    return service


def container(service: dict[str, Any]) -> dict[str, Any]:
    return service["spec"]["template"]["spec"]["containers"][0]


def applied(ctx: Connection, service: dict[str, Any]) -> None:
    """Apply a storefront that works but is wrong for the lab, and wait for it as the notebook does (Ready)."""
    apply(service, connection=ctx)
    await_ready(ctx)


def await_ready(ctx: Connection) -> None:
    eventually(
        lambda: (s := lab04.look_at_storefront(ctx)).ready == "True" and s.latest_created == s.latest_ready,
        "the storefront's newest revision to be Ready",
        timeout=120,
    )


def await_not_ready(ctx: Connection) -> None:
    """Until Knative itself reports the problem (Ready False): from then on, the check has it to read."""
    eventually(lambda: lab04.look_at_storefront(ctx).ready == "False", "the storefront to be not Ready", timeout=120)


def new_revision(ctx: Connection, service: dict[str, Any]) -> str:
    """Apply a changed storefront; the name of the revision Knative makes for it (numbering is Knative's)."""
    before = lab04.look_at_storefront(ctx).latest_created

    def newer() -> str | None:
        latest = lab04.look_at_storefront(ctx).latest_created
        return latest if latest != before else None

    apply(service, connection=ctx)
    return eventually(newer, f"a revision newer than {before}")


def lessons_applied(ctx: Connection, *names: str) -> None:
    """Step 1 done, then the lab's lesson files applied in order, each Ready as the notebook waits for it.

    Quicker than `checkers.solve`, which also waits for zero and a cold start: no case after step 3 needs those.
    """
    checkers.solve(ctx, "04.1")
    for name in names:
        applied(ctx, knative_storefront(name))


# --- 04.1 -> 04.3 ---------------------------------------------------------------------------------------


def test_04_1_lab02s_storefront_holding_the_name_is_named(cluster: LocalCluster, ctx: Connection, fix: Fixer) -> None:
    """Coming from lab 02: its storefront Deployment and Service still hold the name the Route needs."""
    ensure_admin_secret(ctx)
    apply(overlay("02-microservices"), connection=ctx)
    cluster.kubectl(
        "wait", "--for=condition=Available", "deployment", "--all", "-n", ctx.namespace, "--timeout=120s", timeout=130
    )
    apply(base_storefront(), connection=ctx)
    await_not_ready(ctx)
    failed = diagnosed(ctx, "04.1", "placeholder Service")
    assert "kubectl delete deployment,service storefront" in failed.hints[-1]
    assert fix("04.1", failed).ok


def test_04_1_a_revision_whose_container_exits_is_named(ctx: Connection, fix: Fixer) -> None:
    checkers.solve(ctx, "04.1")
    broken = base_storefront()
    container(broken)["command"] = ["python", "-m", "bookstore.services.storefrnt"]
    failing = new_revision(ctx, broken)
    failed = diagnosed(ctx, "04.1", f"revision {failing} failed", "ExitCode1", "storefrnt")
    assert fix("04.1", failed).ok


def test_04_1_a_foreign_image_is_named(ctx: Connection, fix: Fixer) -> None:
    checkers.solve(ctx, "04.1")
    foreign = base_storefront()
    container(foreign)["image"] = "nginx:1.27"
    failing = new_revision(ctx, foreign)
    failed = diagnosed(ctx, "04.1", f"revision {failing} failed", 'Unable to fetch image "nginx:1.27"')
    assert fix("04.1", failed).ok


def test_04_2_the_default_window_is_named(ctx: Connection, fix: Fixer) -> None:
    """The lab's manifest as step 1 leaves it: no autoscaling annotations, Knative's 60 s window."""
    checkers.solve(ctx, "04.1")
    failed = diagnosed(ctx, "04.2", "stable window of 60 s")
    assert fix("04.2", failed).ok


def test_04_2_min_scale_keeping_it_from_zero_is_named(ctx: Connection, fix: Fixer) -> None:
    checkers.solve(ctx, "04.1")
    kept = knative_storefront()
    kept["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] = "1"
    applied(ctx, kept)
    failed = diagnosed(ctx, "04.2", 'autoscaling.knative.dev/min-scale: "1"', "never goes to zero")
    assert "kubectl patch ksvc storefront --type=json" in failed.hints[-1]
    assert fix("04.2", failed).ok


def test_04_3_no_request_at_zero_is_named(ctx: Connection, fix: Fixer) -> None:
    checkers.solve(ctx, "04.2")  # the storefront idle at zero, and never asked since
    failed = diagnosed(ctx, "04.3", "has been started from zero by a request")
    assert "kubectl wait revision/" in failed.hints[-1]
    assert fix("04.3", failed).ok


# --- 04.4 -> 04.7, after the lab's first two steps (v1 is the revision the lesson files pin) --------------


def test_04_4_a_split_of_100_to_0_is_named(ctx: Connection, fix: Fixer) -> None:
    lessons_applied(ctx, lab04.AUTOSCALING)
    lopsided = knative_storefront(lab04.SPLIT)
    percents = {True: 100, False: 0}  # the attendee gave v2 everything
    for target in lopsided["spec"]["traffic"]:
        target["percent"] = percents[bool(target.get("latestRevision"))]
    applied(ctx, lopsided)
    v2 = lab04.look_at_storefront(ctx).latest_ready
    failed = diagnosed(ctx, "04.4", f"All of the storefront's traffic goes to {v2}")
    assert fix("04.4", failed).ok


def test_04_4_a_wrong_revision_name_in_the_traffic_is_named(ctx: Connection, fix: Fixer) -> None:
    lessons_applied(ctx, lab04.AUTOSCALING)
    misnamed = knative_storefront(lab04.SPLIT)
    for target in misnamed["spec"]["traffic"]:
        if target.get("revisionName"):
            target["revisionName"] = "storefront-v1"
    apply(misnamed, connection=ctx)
    failed = diagnosed(ctx, "04.4", "storefront-v1")
    assert fix("04.4", failed).ok


def test_04_5_a_missing_tag_is_named(ctx: Connection, fix: Fixer) -> None:
    """Step 4's 50/50 split, with no tag: v1 has no URL of its own yet."""
    lessons_applied(ctx, lab04.AUTOSCALING, lab04.SPLIT)
    failed = diagnosed(ctx, "04.5", "No revision of the storefront has a tag")
    assert fix("04.5", failed).ok


def test_04_6_max_scale_1_then_no_load_are_named(
    cluster: LocalCluster, ctx: Connection, fix: Fixer, tmp_path: Path
) -> None:
    """The attendee capped the storefront at one pod; repaired, it still needs the load that scales it out."""
    lessons_applied(ctx, lab04.AUTOSCALING, lab04.SPLIT, lab04.TAGGED)
    cluster.kubectl("patch", "ksvc/storefront", "-n", ctx.namespace, "--type=merge", "-p", ONE_POD_AT_MOST)
    await_ready(ctx)
    failed = diagnosed(ctx, "04.6", 'autoscaling.knative.dev/max-scale: "1"', "never gives it a second pod")
    follow(failed.hints[-1], ctx, cluster, tmp_path)
    await_ready(ctx)
    failed = diagnosed(ctx, "04.6", "has not been under enough load")
    assert "watch_scaling" in failed.hints[-1]
    assert fix("04.6", failed).ok


def test_04_7_the_challenge_shows_the_symptom_and_its_hint_releases_v3(ctx: Connection, fix: Fixer) -> None:
    lessons_applied(ctx, lab04.AUTOSCALING, lab04.SPLIT, lab04.TAGGED)
    lab04.start_challenge(ctx)
    await_not_ready(ctx)
    failed = diagnosed(ctx, "04.7", "Visitors do not get v3")
    assert fix("04.7", failed).ok
