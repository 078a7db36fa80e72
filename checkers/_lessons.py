"""A lab's lesson files, the manifests beside its overlay that a notebook applies one step at a time.

Hints name them by absolute path in a `kubectl` command, so an attendee (or a test following the
hint literally) can run it from any directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labkit._apply import load_manifests
from labkit.kustomize import overlay_path


def lesson_path(lab_id: str, name: str) -> Path:
    return overlay_path(lab_id) / name


def load_lesson(lab_id: str, name: str) -> list[dict[str, Any]]:
    """The objects of one lesson file of a lab (e.g. service-storefront-v2-50-50.yaml)."""
    return load_manifests(lesson_path(lab_id, name))


def apply_command(lab_id: str, name: str | None = None) -> str:
    """A hint's code span putting back a lesson file, or with no name the lab's whole overlay.

    Server-side with --force-conflicts: what the file says wins over what was applied before,
    whoever applied it (the notebook applies as labkit).
    """
    if name is None:
        return f"`kubectl apply --server-side --force-conflicts -k {overlay_path(lab_id)}`"
    return f"`kubectl apply --server-side --force-conflicts -f {lesson_path(lab_id, name)}`"
