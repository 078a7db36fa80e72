"""A lab's manifests as kustomize renders them from infra/ (base plus the lab's overlay).

    objects = overlay("02-microservices")                        # every object of the lab
    labkit.apply(overlay("01-monolith", kinds={"Service"}))      # only its Service

Rendering is `kubectl kustomize`, built into kubectl, so the notebook applies exactly what
`kubectl apply -k infra/overlays/<lab>` would.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path

import yaml

from labkit._apply import Manifest, ManifestError, load_manifests
from labkit._kubectl import KubectlError, kubectl
from labkit.settings import PROJECT_ROOT

__all__ = ["BASES", "INFRA", "OVERLAYS", "base_manifest", "overlay", "overlay_path"]

INFRA = PROJECT_ROOT / "infra"
OVERLAYS = INFRA / "overlays"
BASES = INFRA / "base"


def overlay_path(lab_id: str) -> Path:
    """The overlay directory of a lab ("02-microservices"); ManifestError names the labs that have one."""
    path = OVERLAYS / lab_id
    if not (path / "kustomization.yaml").is_file():
        known = ", ".join(sorted(p.name for p in OVERLAYS.iterdir() if p.is_dir())) if OVERLAYS.is_dir() else "none"
        raise ManifestError(f"no kustomize overlay {lab_id!r} under {OVERLAYS} (there are: {known})")
    return path


def overlay(lab_id: str, *, kinds: Iterable[str] | None = None) -> list[Manifest]:
    """The objects of a lab's overlay, rendered by `kubectl kustomize`; `kinds` keeps only those kinds."""
    path = overlay_path(lab_id)
    try:
        rendered = kubectl("kustomize", str(path)).stdout
    except KubectlError as exc:
        raise ManifestError(f"kustomize could not render {path}: {exc}") from exc
    objects = load_manifests(rendered)
    if kinds is None:
        return objects
    wanted = set(kinds)
    return [obj for obj in objects if obj["kind"] in wanted]


def base_manifest(kind: str, name: str) -> tuple[Path, Manifest] | None:
    """The file under infra/base/ that defines `kind` `name`, and the object as written there.

    Checks use it to turn "this object is missing or differs from the lab's" into a literal fix
    (`kubectl apply -f <file>`), so the file path is absolute: it works from any directory.
    """
    return _base_manifests().get((kind, name))


@cache
def _base_manifests() -> dict[tuple[str, str], tuple[Path, Manifest]]:
    found: dict[tuple[str, str], tuple[Path, Manifest]] = {}
    for path in sorted(BASES.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and document.get("kind") and (document.get("metadata") or {}).get("name"):
                found[(document["kind"], document["metadata"]["name"])] = (path, document)
    return found
