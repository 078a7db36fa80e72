"""`lab progress` as an instructor runs it: which checks pass now, per attendee namespace."""

from __future__ import annotations

import json

from tests.integration.conftest import LocalCluster
from tests.integration.test_lab_check import lab

ATTENDEE_LABEL = "bookstore.workshop/attendee"


def progress(cluster: LocalCluster, *args: str) -> list[dict[str, object]]:
    run = lab(cluster, "progress", *args, "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


def test_progress_follows_the_attendee_and_every_labelled_namespace(fresh_cluster: LocalCluster) -> None:
    (alone,) = progress(fresh_cluster, "00")
    assert (alone["attendee"], alone["namespace"]) == ("bookstore", "bookstore")
    assert alone["checks"]["00.3"] == "FAILED" and alone["passed"] == 2

    assert lab(fresh_cluster, "solve", "00").returncode == 0
    (solved,) = progress(fresh_cluster, "00")
    assert solved["checks"] == dict.fromkeys(("00.1", "00.2", "00.3", "00.4"), "PASSED")

    # A class: two attendee namespaces, labelled with the attendees' names; the lab namespace is not one.
    for name in ("ada", "grace"):
        fresh_cluster.kubectl("create", "namespace", f"attendee-{name}")
        fresh_cluster.kubectl("label", "namespace", f"attendee-{name}", f"{ATTENDEE_LABEL}={name}")
    rows = progress(fresh_cluster, "00")
    assert [(row["attendee"], row["namespace"]) for row in rows] == [
        ("ada", "attendee-ada"),
        ("grace", "attendee-grace"),
    ]
    assert all(row["checks"]["00.3"] == "FAILED" for row in rows)

    table = lab(fresh_cluster, "progress", "00")
    assert table.returncode == 0
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["attendee", "00.1", "00.2", "00.3", "00.4", "passed"]
    assert lines[0].split()[0] == "ada" and lines[0].split()[-1].endswith("/4")


def test_progress_exits_2_when_localcluster_is_down(fresh_cluster: LocalCluster) -> None:
    fresh_cluster.lab("down")
    down = lab(fresh_cluster, "progress", "00")
    assert down.returncode == 2
    assert "Cannot reach the cluster" in down.stderr
