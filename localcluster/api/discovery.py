"""API discovery: `/api`, `/apis`, per group-version resource lists, and aggregated discovery (v2)."""

from __future__ import annotations

import hashlib
from typing import Any

from localcluster.api.resources import ResourceRegistry, ResourceType

_SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "log": ["get"],
    "token": ["create"],
}
#: Subresources served in a kind of another group (a Deployment's Scale, a ServiceAccount's TokenRequest).
_SUBRESOURCE_KINDS = {"scale": ("autoscaling", "v1", "Scale"), "token": ("authentication.k8s.io", "v1", "TokenRequest")}


def _subresource_kind(resource_type: ResourceType, subresource: str) -> tuple[str, str, str]:
    return _SUBRESOURCE_KINDS.get(subresource, (resource_type.group, resource_type.storage_version, resource_type.kind))


def _storage_hash(resource_type: ResourceType) -> str:
    return (
        hashlib.sha256(f"{resource_type.group}/{resource_type.storage_version}/{resource_type.kind}".encode())
        .digest()[:8]
        .hex()
    )


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group_list(registry: ResourceRegistry) -> dict[str, Any]:
    groups = []
    for group, versions in registry.groups().items():
        if not group:
            continue
        listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": listed, "preferredVersion": listed[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: ResourceRegistry, group: str) -> dict[str, Any] | None:
    for listed in api_group_list(registry)["groups"]:
        if listed["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **listed}
    return None


def resource_list(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any] | None:
    """The APIResourceList of one group-version, or None if it is not served."""
    types = [t for t in registry if t.group == group and version in t.versions]
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for resource_type in types:
        entry: dict[str, Any] = {
            "name": resource_type.plural,
            "singularName": resource_type.singular,
            "namespaced": resource_type.namespaced,
            "kind": resource_type.kind,
            "verbs": list(resource_type.verbs),
            "storageVersionHash": _storage_hash(resource_type),
        }
        if resource_type.short_names:
            entry["shortNames"] = list(resource_type.short_names)
        if resource_type.categories:
            entry["categories"] = list(resource_type.categories)
        resources.append(entry)
        for subresource in sorted(resource_type.subresources):
            sub_group, sub_version, sub_kind = _subresource_kind(resource_type, subresource)
            sub: dict[str, Any] = {
                "name": f"{resource_type.plural}/{subresource}",
                "singularName": "",
                "namespaced": resource_type.namespaced,
                "kind": sub_kind,
                "verbs": _SUBRESOURCE_VERBS.get(subresource, ["get"]),
            }
            if subresource in _SUBRESOURCE_KINDS:
                sub["group"], sub["version"] = sub_group, sub_version
            resources.append(sub)
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def aggregated(registry: ResourceRegistry, *, legacy: bool) -> dict[str, Any]:
    """apidiscovery.k8s.io/v2 APIGroupDiscoveryList: all groups (or the core group) in one answer."""
    items = []
    for group, versions in registry.groups().items():
        if bool(group) == legacy:
            continue
        version_entries = []
        for version in versions:
            resources = []
            for resource_type in registry:
                if resource_type.group != group or version not in resource_type.versions:
                    continue
                resource: dict[str, Any] = {
                    "resource": resource_type.plural,
                    "responseKind": {"group": group, "version": version, "kind": resource_type.kind},
                    "scope": "Namespaced" if resource_type.namespaced else "Cluster",
                    "singularResource": resource_type.singular,
                    "verbs": list(resource_type.verbs),
                }
                if resource_type.short_names:
                    resource["shortNames"] = list(resource_type.short_names)
                if resource_type.categories:
                    resource["categories"] = list(resource_type.categories)
                subresources = []
                for subresource in sorted(resource_type.subresources):
                    sub_group, sub_version, sub_kind = _subresource_kind(resource_type, subresource)
                    subresources.append(
                        {
                            "subresource": subresource,
                            "responseKind": {"group": sub_group, "version": sub_version, "kind": sub_kind},
                            "verbs": _SUBRESOURCE_VERBS.get(subresource, ["get"]),
                        }
                    )
                if subresources:
                    resource["subresources"] = subresources
                resources.append(resource)
            version_entries.append({"version": version, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": version_entries})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
