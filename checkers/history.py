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

from checkers._context import Context
from checkers._notes import NamespaceNotes

__all__ = ["HISTORY", "forget", "recall", "remember"]

HISTORY = "lab-history"
_NOTES = NamespaceNotes(HISTORY)


def remember(ctx: Context, check_id: str, pod_uid: str, seen: dict[str, Any]) -> None:
    """Keep what `check_id` saw in pod `pod_uid` when it passed."""
    _NOTES.put(ctx, check_id, json.dumps({"pod": pod_uid, "seen": seen}, ensure_ascii=False))


def recall(ctx: Context, check_id: str, current_pod_uid: str | None) -> dict[str, Any] | None:
    """What `check_id` saw when it passed, if the pod that showed it has been replaced since (else None)."""
    kept = _NOTES.read(ctx).get(check_id)
    if kept is None:
        return None
    memory = json.loads(kept)
    return dict(memory["seen"]) if memory.get("pod") != current_pod_uid else None


def forget(ctx: Context, lab_number: str) -> None:
    """Forget what the lab's checks remembered (its reset calls this)."""
    _NOTES.forget(ctx, lab_number)
