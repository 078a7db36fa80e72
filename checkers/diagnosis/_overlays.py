"""Fixes that put back a lab's own objects, from the lab's kustomize overlay rather than infra/base.

A lab whose overlay patches the base (lab 03 turns lab mode on, lab 05 gives each service its own
ServiceAccount) is repaired from that overlay: the base's manifest would bring the object back
without the patch, and the next check would fail on what the fix undid.
"""

from __future__ import annotations

from functools import cache

from checkers.diagnosis._model import Problem
from labkit.kustomize import overlay, overlay_path


def overlay_fix(lab_id: str, name: str, kind: str = "Deployment") -> str:
    """Apply the lab's objects of `name`'s app again, as the overlay writes them.

    Client-side `kubectl apply`: its strategic merge replaces a changed volume source whole (the
    retainKeys strategy), where a server-side apply keeps the old source beside the new and is refused.
    """
    app = _apps(lab_id).get((kind, name), name)
    return f"Put back the lab's {app} objects: `kubectl apply -k {overlay_path(lab_id)} -l app={app}`."


def overlay_fixes(lab_id: str, name: str) -> dict[Problem, str]:
    """`Diagnosis.failed(fixes=...)` for Deployment `name` of the lab: what a missing or broken one needs."""
    put_back = overlay_fix(lab_id, name)
    return {
        Problem.NOT_FOUND: put_back,
        Problem.FAILED_CREATE: put_back,
        Problem.CRASH_LOOP: f"If you changed its Deployment, {put_back[0].lower()}{put_back[1:]}",
    }


@cache
def _apps(lab_id: str) -> dict[tuple[str, str], str]:
    """(kind, name) → the `app` label of each object in the lab's overlay that has one."""
    return {
        (obj["kind"], obj["metadata"]["name"]): obj["metadata"]["labels"]["app"]
        for obj in overlay(lab_id)
        if "app" in (obj["metadata"].get("labels") or {})
    }
