"""Pure parts of the workload controllers: pod-template-hash and int-or-percent arithmetic."""

from __future__ import annotations

from localcluster.controllers.workloads import _resolve, template_hash


def test_template_hash_is_stable_and_safe() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    first = template_hash(template)
    assert first == template_hash({"spec": template["spec"], "metadata": template["metadata"]})
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert template_hash(template, collision_count=1) != first
    changed = {**template, "spec": {"containers": [{"name": "c", "image": "j"}]}}
    assert template_hash(changed) != first


def test_surge_rounds_up_and_unavailable_rounds_down() -> None:
    assert _resolve("25%", 10, round_up=True) == 3
    assert _resolve("25%", 10, round_up=False) == 2
    assert _resolve(2, 10, round_up=True) == 2
    assert _resolve(None, 10, round_up=True) == 0
