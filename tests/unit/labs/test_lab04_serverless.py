"""Lab 04 without a cluster: its Knative manifests pass Knative's webhook, its lessons build on each other,
and the checks read revisions, traffic and scaling events as kubectl shows them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from bookstore.modules.host import BUNDLED_MODULES
from checkers.lab04_serverless import (
    AUTOSCALING,
    CHALLENGE_RANKING,
    LAB_ID,
    SPLIT,
    TAGGED,
    V3,
    WINDOW_LIMIT,
    RevisionState,
    Scaling,
    ServingState,
    _seconds,
    challenge_release,
    lesson,
)
from labkit.kustomize import INFRA, overlay
from localcluster.knative import fielderrors, webhook
from localcluster.knative.autoscaler import stable_window
from localcluster.knative.config import AutoscalerConfig

KNATIVE = "serving.knative.dev/v1"


def knative_manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every Knative object the labs' manifests hold (bases, overlays, lesson files)."""
    found = []
    for path in sorted([*(INFRA / "base").rglob("*.yaml"), *(INFRA / "overlays").rglob("*.yaml")]):
        documents = yaml.safe_load_all(path.read_text(encoding="utf-8"))  # patches are lists: not manifests
        found += [
            (str(path.relative_to(INFRA)), obj)
            for obj in documents
            if isinstance(obj, dict) and obj.get("apiVersion") == KNATIVE
        ]
    return found


def admitted(obj: dict[str, Any]) -> str:
    """What Knative's webhook says of a create (defaults first): "" when it admits the object."""
    obj = copy.deepcopy(obj)
    webhook.set_defaults(obj["kind"], obj, None, webhook.WebhookConfig())
    return fielderrors.render(webhook.validate(obj["kind"], obj, None, webhook.WebhookConfig()))


def test_the_project_has_knative_manifests() -> None:
    assert len(knative_manifests()) >= 5


@pytest.mark.parametrize(
    ("path", "obj"), knative_manifests(), ids=lambda value: value if isinstance(value, str) else ""
)
def test_every_knative_manifest_passes_knatives_webhook(path: str, obj: dict[str, Any]) -> None:
    assert admitted(obj) == "", path


def test_the_challenges_release_is_admitted_but_cannot_start() -> None:
    release = challenge_release()
    assert admitted(release) == ""
    env = {e["name"]: e["value"] for e in release["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BOOKSTORE_VERSION"] == "v3" and env["BOOKSTORE_RANKING"] == CHALLENGE_RANKING
    assert CHALLENGE_RANKING not in BUNDLED_MODULES


def test_the_lessons_follow_on_from_each_other() -> None:
    (first,) = [obj for obj in overlay(LAB_ID) if obj["apiVersion"] == KNATIVE]
    template = first["spec"]["template"]
    assert "annotations" not in template["metadata"]
    (autoscaling,) = lesson(AUTOSCALING)
    annotations = autoscaling["spec"]["template"]["metadata"]["annotations"]
    assert stable_window(annotations, AutoscalerConfig()) <= WINDOW_LIMIT
    versions = []
    for name in (AUTOSCALING, SPLIT, TAGGED, V3):
        (obj,) = lesson(name)
        assert obj["spec"]["template"]["metadata"]["annotations"] == annotations, name
        versions.append(obj["spec"]["template"]["metadata"]["labels"]["version"])
    assert versions == ["v1", "v2", "v2", "v3"]
    (split,) = lesson(SPLIT)
    assert split["spec"]["traffic"] == [
        {"revisionName": "storefront-00002", "percent": 50},
        {"latestRevision": True, "percent": 50},
    ]
    (tagged,) = lesson(TAGGED)
    assert tagged["spec"]["traffic"][0]["tag"] == "v1"
    # The last release keeps the split and the tag, so every check of the lab holds at its end.
    (v3,) = lesson(V3)
    assert v3["spec"]["traffic"] == tagged["spec"]["traffic"]


def revision(name: str, version: str) -> RevisionState:
    return RevisionState(name, "1", version, {"Ready": {"status": "True"}}, 1, 1, 6.0)


def test_shares_add_up_per_revision() -> None:
    state = ServingState(
        exists=True,
        traffic=(
            {"revisionName": "storefront-00002", "percent": 10, "tag": "v1"},
            {"revisionName": "storefront-00003", "percent": 90},
            {"revisionName": "storefront-00003", "percent": 0, "tag": "latest"},
        ),
        revisions={"storefront-00002": revision("storefront-00002", "v1")},
    )
    assert state.shares() == {"storefront-00002": 10, "storefront-00003": 90}


def test_scaling_events_tell_the_replica_change() -> None:
    up = Scaling("storefront-00002", "Scaled up replica set storefront-00002-deployment-x from 0 to 1", 2, "a", "b")
    assert up.change == (0, 1)
    assert Scaling("r", "something else", 1, "", "").change is None


@pytest.mark.parametrize(("text", "seconds"), [("6s", 6.0), ("1m", 60.0), ("1m30s", 90.0), ("", None), ("6", None)])
def test_window_annotations_in_seconds(text: str, seconds: float | None) -> None:
    assert _seconds(text) == seconds
