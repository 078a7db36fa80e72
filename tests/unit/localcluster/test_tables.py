"""Server-side tables: upstream's columns, age format, CRD printer columns."""

from __future__ import annotations

import pytest

from localcluster.api.resources import BUILTIN_TYPES
from localcluster.api.tables import human_duration, jsonpath, to_table


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600 + 60, "3h1m"),
        (9 * 3600, "9h"),
        (3 * 86400 + 3600, "3d1h"),
        (400 * 86400, "400d"),
        (-5, "<invalid>"),
    ],
)
def test_human_duration_matches_upstream(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_jsonpath_subset() -> None:
    obj = {
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]},
        "spec": {"hosts": ["a", "b"]},
    }
    assert jsonpath(obj, ".status.conditions[?(@.type=='Ready')].status") == ["True"]
    assert jsonpath(obj, ".spec.hosts[1]") == ["b"]
    assert jsonpath(obj, ".spec.hosts[*]") == ["a", "b"]
    assert jsonpath(obj, ".spec.missing") == []


def test_pod_status_column_shows_the_waiting_reason() -> None:
    pods = next(t for t in BUILTIN_TYPES if t.kind == "Pod")
    pod = {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"ready": False, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ],
        },
    }
    table = to_table(pods, [pod])
    names = [c["name"] for c in table["columnDefinitions"]]
    row = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert row["Ready"] == "0/1" and row["Status"] == "CrashLoopBackOff" and row["Restarts"] == "4"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
