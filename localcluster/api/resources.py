"""The kinds localcluster serves: built-in Kubernetes kinds, and the Knative and Istio CRDs.

Built-in kinds are listed here as the apiserver hard-codes them; custom kinds are read from the
official CRD manifests in `shared/schemas/` (names, scope, versions, subresources, printer columns),
so their discovery and table output match a real cluster that installed those CRDs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localcluster.api.errors import NotFound

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_VERBS = ("get", "list", "watch")
#: Why CustomResourceDefinitions can be read but not written here.
CRDS_ARE_FIXED = (
    "localcluster serves a fixed set of custom resource definitions (the official Knative Serving and Istio "
    "CRDs it implements) and cannot install others; use a real cluster (`lab up --target cluster`) for that"
)
#: The verbs of the review kinds (access reviews, token reviews): they are created, answered, never stored.
CREATE_ONLY = ("create",)


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: `group/version` + `plural`, with what discovery says about it.

    `versions` lists the served versions, preferred (storage) first; objects are stored once and
    served in any of them (the project's multi-version kinds have identical schemas).
    """

    group: str
    versions: tuple[str, ...]
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset({"status"})
    #: additionalPrinterColumns of a CRD, per version; empty for built-ins (see tables.py).
    printer_columns: tuple[dict[str, Any], ...] = ()
    #: openAPIV3Schema of a CRD per version; None for built-ins (their schemas come from schemas.py).
    crd_schemas: dict[str, dict[str, Any]] | None = field(default=None, compare=False, hash=False)
    #: Why clients may only read this kind ("" when they may write it too).
    read_only: str = ""
    #: A DELETE answers with the object (upstream's ReturnDeletedObject), not a Success Status.
    returns_deleted_object: bool = False
    #: Created, answered and never stored (access reviews, TokenReview): discovery says `create` only.
    answered: bool = False

    @property
    def verbs(self) -> tuple[str, ...]:
        if self.answered:
            return CREATE_ONLY
        if self.read_only:
            return READ_VERBS
        if self.kind == "Namespace":
            return tuple(v for v in ALL_VERBS if v != "deletecollection")
        return ALL_VERBS

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def storage_version(self) -> str:
        return self.versions[0]

    @property
    def key(self) -> str:
        """Storage key, the same for every served version (as etcd's /registry/<group>/<plural>)."""
        return f"{self.group or 'core'}/{self.plural}"

    @property
    def is_custom(self) -> bool:
        return self.crd_schemas is not None

    def api_version(self, version: str | None = None) -> str:
        version = version or self.storage_version
        return f"{self.group}/{version}" if self.group else version

    def qualified(self) -> str:
        """`deployments.apps`, as kubectl and error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _core(
    version_group: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    short: Iterable[str] = (),
    categories: Iterable[str] = (),
    subresources: Iterable[str] = (),
    read_only: str = "",
    returns_deleted_object: bool = False,
    answered: bool = False,
) -> ResourceType:
    group, _, version = version_group.rpartition("/")
    return ResourceType(
        group=group,
        versions=(version,),
        kind=kind,
        plural=plural,
        namespaced=namespaced,
        short_names=tuple(short),
        categories=tuple(categories),
        subresources=frozenset(subresources),
        read_only=read_only,
        returns_deleted_object=returns_deleted_object,
        answered=answered,
    )


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _core(
        "v1",
        "Namespace",
        "namespaces",
        namespaced=False,
        short=["ns"],
        subresources=["status"],
        returns_deleted_object=True,
    ),
    _core(
        "v1",
        "Pod",
        "pods",
        short=["po"],
        categories=["all"],
        subresources=["status", "log"],
        returns_deleted_object=True,
    ),
    _core(
        "v1",
        "Service",
        "services",
        short=["svc"],
        categories=["all"],
        subresources=["status"],
        returns_deleted_object=True,
    ),
    _core("v1", "Node", "nodes", namespaced=False, short=["no"], subresources=["status"]),
    _core("v1", "Endpoints", "endpoints", short=["ep"]),
    _core("v1", "ConfigMap", "configmaps", short=["cm"]),
    _core("v1", "Secret", "secrets"),
    _core("v1", "Event", "events", short=["ev"]),
    _core("v1", "ServiceAccount", "serviceaccounts", short=["sa"], subresources=["token"], returns_deleted_object=True),
    _core(
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        short=["pvc"],
        subresources=["status"],
        returns_deleted_object=True,
    ),
    _core(
        "apps/v1", "Deployment", "deployments", short=["deploy"], categories=["all"], subresources=["status", "scale"]
    ),
    _core("apps/v1", "ReplicaSet", "replicasets", short=["rs"], categories=["all"], subresources=["status", "scale"]),
    _core(
        "apps/v1", "StatefulSet", "statefulsets", short=["sts"], categories=["all"], subresources=["status", "scale"]
    ),
    _core("batch/v1", "Job", "jobs", categories=["all"], subresources=["status"]),
    _core("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
    _core("coordination.k8s.io/v1", "Lease", "leases"),
    _core("rbac.authorization.k8s.io/v1", "Role", "roles"),
    _core("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    _core("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", namespaced=False),
    _core("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    _core(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        namespaced=False,
        short=["crd", "crds"],
        categories=["api-extensions"],
        subresources=["status"],
        read_only=CRDS_ARE_FIXED,
    ),
    *(
        _core(f"{group}/v1", kind, plural, namespaced=namespaced, answered=True)
        for group, kind, plural, namespaced in (
            ("authentication.k8s.io", "TokenReview", "tokenreviews", False),
            ("authentication.k8s.io", "SelfSubjectReview", "selfsubjectreviews", False),
            ("authorization.k8s.io", "LocalSubjectAccessReview", "localsubjectaccessreviews", True),
            ("authorization.k8s.io", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False),
            ("authorization.k8s.io", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False),
            ("authorization.k8s.io", "SubjectAccessReview", "subjectaccessreviews", False),
        )
    ),
)


def load_crds(schemas_dir: Path) -> list[dict[str, Any]]:
    """Every CRD manifest under `schemas_dir` (the official Knative and Istio CRDs)."""
    if not schemas_dir.is_dir():
        raise FileNotFoundError(
            f"the official CRD schemas are missing: {schemas_dir} does not exist "
            "(set LAB_SHARED_DIR to the folder that holds schemas/)"
        )
    crds = []
    for path in sorted(schemas_dir.glob("*/*.yaml")):
        with path.open("rb") as stream:
            for document in yaml.load_all(stream, Loader=yaml.CSafeLoader):
                if document and document.get("kind") == "CustomResourceDefinition":
                    crds.append(document)
    return crds


def _crd_type(crd: dict[str, Any]) -> ResourceType:
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    # Preferred version first: the storage version, as the apiserver's discovery orders them.
    served.sort(key=lambda v: not v.get("storage", False))
    storage = served[0]
    return ResourceType(
        group=spec["group"],
        versions=tuple(v["name"] for v in served),
        kind=names["kind"],
        plural=names["plural"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames", ())),
        categories=tuple(names.get("categories", ())),
        subresources=frozenset(storage.get("subresources", {}).keys()),
        printer_columns=tuple(storage.get("additionalPrinterColumns", ())),
        crd_schemas={v["name"]: v["schema"]["openAPIV3Schema"] for v in served},
    )


def crd_status(crd: dict[str, Any], now: str) -> dict[str, Any]:
    """The status the apiextensions apiserver gives a CRD it has accepted and serves."""
    names = dict(crd["spec"]["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", f"{names['kind']}List")
    storage = next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))
    return {
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "acceptedNames": names,
        "storedVersions": [storage],
    }


class ResourceRegistry:
    """Look-ups of resource types by path segments, by kind and by the names kubectl accepts."""

    def __init__(self, types: Iterable[ResourceType], crds: Iterable[dict[str, Any]] = ()) -> None:
        self.types: tuple[ResourceType, ...] = tuple(types)
        #: The CRD manifests the custom types were read from, served as CustomResourceDefinition objects.
        self.crds: tuple[dict[str, Any], ...] = tuple(crds)
        self._by_path = {(t.group, v, t.plural): t for t in self.types for v in t.versions}
        self._by_kind = {(t.group, v, t.kind): t for t in self.types for v in t.versions}

    @classmethod
    def load(cls, schemas_dir: Path) -> ResourceRegistry:
        crds = load_crds(schemas_dir)
        return cls([*BUILTIN_TYPES, *(_crd_type(crd) for crd in crds)], crds)

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self.types)

    def by_path(self, group: str, version: str, plural: str) -> ResourceType:
        try:
            return self._by_path[(group, version, plural)]
        except KeyError:
            where = f"{group}/{version}" if group else version
            raise NotFound(f"the server could not find the requested resource ({plural} in {where})") from None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        return self._by_kind.get((group, version, kind))

    def get(self, group: str, plural: str) -> ResourceType:
        """The type stored under `group`/`plural`, whatever version it is asked in."""
        for resource_type in self.types:
            if resource_type.group == group and resource_type.plural == plural:
                return resource_type
        raise KeyError(f"{plural}.{group}")

    def groups(self) -> dict[str, list[str]]:
        """Served versions per group, preferred first; '' is the legacy core group."""
        found: dict[str, list[str]] = {}
        for resource_type in self.types:
            versions = found.setdefault(resource_type.group, [])
            versions.extend(v for v in resource_type.versions if v not in versions)
        return found
