"""What a check once saw, kept in the namespace, for checks whose evidence lives in a process's memory.

A refused purchase is seen in the shop's spans, which live in its process: once the pod is replaced
(lab 01's fix-it challenge rolls the monolith out again), they are gone, although the attendee did
the step. Such a check remembers what it saw when it passed, with the pod that showed it; a later run
that finds the evidence gone *and* that pod replaced trusts the memory, and says so. The memory is the
ConfigMap `lab-history`; a lab's reset forgets its checks.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client.exceptions import ApiException

from checkers._context import Context

__all__ = ["HISTORY", "forget", "recall", "remember"]

HISTORY = "lab-history"


def remember(ctx: Context, check_id: str, pod_uid: str, seen: dict[str, Any]) -> None:
    """Keep what `check_id` saw in pod `pod_uid` when it passed."""
    _write(ctx, {**_read(ctx), check_id: json.dumps({"pod": pod_uid, "seen": seen}, ensure_ascii=False)})


def recall(ctx: Context, check_id: str, current_pod_uid: str | None) -> dict[str, Any] | None:
    """What `check_id` saw when it passed, if the pod that showed it has been replaced since (else None)."""
    kept = _read(ctx).get(check_id)
    if kept is None:
        return None
    memory = json.loads(kept)
    return dict(memory["seen"]) if memory.get("pod") != current_pod_uid else None


def forget(ctx: Context, lab_number: str) -> None:
    """Forget what the lab's checks remembered (its reset calls this)."""
    kept = _read(ctx)
    left = {key: value for key, value in kept.items() if not key.startswith(f"{lab_number}.")}
    if left == kept:
        return
    if left:
        _write(ctx, left)
        return
    try:
        ctx.core.delete_namespaced_config_map(HISTORY, ctx.namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _read(ctx: Context) -> dict[str, str]:
    try:
        found = ctx.core.read_namespaced_config_map(HISTORY, ctx.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    return dict(found.data or {})


def _write(ctx: Context, data: dict[str, str]) -> None:
    """Server-side apply the whole map: keys left out are removed (one field manager owns them all)."""
    from labkit._apply import apply

    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": HISTORY}, "data": data}
    apply(manifest, connection=ctx)
