"""Label and field selectors: the apiserver's grammar, matching and its 400 answers."""

from __future__ import annotations

import pytest

from localcluster.api.errors import BadRequest
from localcluster.api.selectors import (
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector_object,
)

LABELS = {"app": "web", "tier": "front", "rank": "5"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app=db", False),
        ("app in (web, db)", True),
        ("app notin (web)", False),
        ("missing notin (x)", True),
        ("app", True),
        ("!app", False),
        ("!missing", True),
        ("rank>4", True),
        ("rank<5", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("", True),
        ("missing=", False),
    ],
)
def test_matching(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize("bad", ["app in web", "app=web,", "=web", "app=web b", "app>x", "Bad Key=1", "a=" + "x" * 64])
def test_bad_label_selectors_are_400(bad: str) -> None:
    with pytest.raises(BadRequest):
        parse_label_selector(bad)


def test_label_selector_object() -> None:
    selector = selector_from_label_selector_object(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front"]},
                {"key": "old", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.matches(LABELS) and not selector.matches({**LABELS, "old": "1"})


def test_field_selectors() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    assert parse_field_selector("status.phase=Running,spec.nodeName==n1", "core/pods").matches(pod)
    assert not parse_field_selector("metadata.name!=p", "core/pods").matches(pod)
    with pytest.raises(BadRequest, match=r"field label not supported: status\.phase"):
        parse_field_selector("status.phase=Running", "core/configmaps")
    with pytest.raises(BadRequest):
        parse_field_selector("metadata.name", "core/pods")
