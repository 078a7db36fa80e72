"""A Route's traffic: the revisions its targets resolve to, by tag, with percents (pkg/reconciler/route/traffic).

`build` resolves `spec.traffic` against the Configurations and Revisions that exist: a configuration
target means its latest ready revision; a target that cannot be routed yet (missing, not ready, or
another Service's revision) makes the whole Route wait, with the condition upstream sets. `split`
is the other end: from `status.traffic`, the revisions and weights a host (the route's own, or a
tag's) sends requests to, as the ingress programs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from localcluster.knative.conditions import FALSE, READY, TRUE
from localcluster.knative.keys import CONFIGURATION_LABEL, SERVICE_LABEL

Obj = dict[str, Any]
Lookup = Callable[[str], Obj | None]


@dataclass(frozen=True)
class RevisionTarget:
    tag: str
    revision_name: str
    configuration_name: str
    percent: int
    latest_revision: bool


@dataclass(frozen=True)
class TargetError:
    """Why a Route cannot assign its traffic yet: the AllTrafficAssigned condition it sets.

    `failure` errors (a missing target, a failed revision) win over ones that may resolve by themselves.
    """

    reason: str
    message: str
    failure: bool


@dataclass(frozen=True)
class TrafficConfig:
    """The flattened targets (status.traffic order) and what each tag routes to."""

    targets: tuple[RevisionTarget, ...]
    by_tag: dict[str, tuple[RevisionTarget, ...]]
    configurations: tuple[str, ...]
    revisions: tuple[str, ...]


def is_ready(obj: Obj | None) -> bool:
    """IsReady(): the latest generation observed and Ready True."""
    if obj is None:
        return False
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return any(c.get("type") == READY and c.get("status") == TRUE for c in status.get("conditions") or [])


def _ready_status(obj: Obj) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == READY:
            return condition.get("status")
    return None


def build(route: Obj, configuration_of: Lookup, revision_of: Lookup) -> tuple[TrafficConfig | None, TargetError | None]:
    """BuildTrafficConfiguration: the routable targets, or the first error (failures preferred)."""
    targets: list[RevisionTarget] = []
    by_tag: dict[str, list[RevisionTarget]] = {"": []}
    configurations: list[str] = []
    revisions: list[str] = []
    deferred: TargetError | None = None
    route_service = (route["metadata"].get("labels") or {}).get(SERVICE_LABEL, "")
    for spec_target in (route.get("spec") or {}).get("traffic") or []:
        target, error = _resolve(spec_target, route_service, configuration_of, revision_of, configurations, revisions)
        if error is not None:
            if deferred is None or error.failure:
                deferred = error
            continue
        assert target is not None
        _merge(targets, target)
        by_tag[""].append(target)
        if target.tag:
            by_tag.setdefault(target.tag, []).append(target)
    if deferred is not None:
        return None, deferred
    consolidated = {tag: _consolidate(group) for tag, group in by_tag.items()}
    return TrafficConfig(tuple(targets), consolidated, tuple(configurations), tuple(revisions)), None


def _resolve(
    spec_target: Obj,
    route_service: str,
    configuration_of: Lookup,
    revision_of: Lookup,
    configurations: list[str],
    revisions: list[str],
) -> tuple[RevisionTarget | None, TargetError | None]:
    tag = spec_target.get("tag") or ""
    percent = int(spec_target.get("percent") or 0)
    latest = bool(spec_target.get("latestRevision", not spec_target.get("revisionName")))
    revision_name = spec_target.get("revisionName") or ""
    if revision_name:
        revision = revision_of(revision_name)
        revisions.append(revision_name)
        if revision is None:
            return None, _missing("Revision", revision_name)
        owner = (revision["metadata"].get("labels") or {}).get(SERVICE_LABEL, "")
        if route_service and owner != route_service:
            if owner:
                message = f'Revision "{revision_name}" belongs to Service "{owner}", not Service "{route_service}".'
            else:
                message = f'Revision "{revision_name}" does not belong to Service "{route_service}".'
            return None, TargetError("RevisionNotOwned", message, failure=True)
        if not is_ready(revision):
            return None, _unready_revision(revision)
        configuration_name = (revision["metadata"].get("labels") or {}).get(CONFIGURATION_LABEL, "")
        if configuration_name and configuration_of(configuration_name) is None:
            return None, _missing("Configuration", configuration_name)
        return RevisionTarget(tag, revision_name, configuration_name, percent, latest), None
    configuration_name = spec_target.get("configurationName") or ""
    configuration = configuration_of(configuration_name)
    configurations.append(configuration_name)
    if configuration is None:
        return None, _missing("Configuration", configuration_name)
    ready_name = (configuration.get("status") or {}).get("latestReadyRevisionName") or ""
    if not ready_name:
        if _ready_status(configuration) == FALSE:
            message = f'Configuration "{configuration_name}" does not have any ready Revision.'
            return None, TargetError("RevisionMissing", message, failure=True)
        message = f'Configuration "{configuration_name}" is waiting for a Revision to become ready.'
        return None, TargetError("RevisionMissing", message, failure=False)
    revision = revision_of(ready_name)
    revisions.append(ready_name)
    if revision is None:
        return None, _missing("Revision", ready_name)
    if not is_ready(revision):
        return None, _unready_revision(revision)
    return RevisionTarget(tag, ready_name, configuration_name, percent, latest), None


def _missing(kind: str, name: str) -> TargetError:
    return TargetError(f"{kind}Missing", f'{kind} "{name}" referenced in traffic not found.', failure=True)


def _unready_revision(revision: Obj) -> TargetError:
    name = revision["metadata"]["name"]
    if _ready_status(revision) == FALSE:
        return TargetError("RevisionMissing", f'Revision "{name}" failed to become ready.', failure=True)
    return TargetError("RevisionMissing", f'Revision "{name}" is not yet ready.', failure=False)


def _merge(targets: list[RevisionTarget], target: RevisionTarget) -> None:
    """mergeIfNecessary: one status entry per (tag, revision, latestRevision), percents added."""
    for index, existing in enumerate(targets):
        same = (existing.tag, existing.revision_name, existing.latest_revision)
        if same == (target.tag, target.revision_name, target.latest_revision):
            targets[index] = replace(existing, percent=existing.percent + target.percent)
            return
    targets.append(target)


def _consolidate(group: list[RevisionTarget]) -> tuple[RevisionTarget, ...]:
    """One target per revision; a lone target takes all of its host's traffic."""
    by_revision: dict[str, RevisionTarget] = {}
    for target in group:
        current = by_revision.get(target.revision_name)
        if current is None:
            by_revision[target.revision_name] = target
        else:
            by_revision[target.revision_name] = replace(current, percent=current.percent + target.percent)
    consolidated = list(by_revision.values())
    if len(consolidated) == 1:
        consolidated = [replace(consolidated[0], percent=100)]
    return tuple(consolidated)


def split(status_traffic: list[Obj], tag: str) -> list[tuple[str, int]]:
    """(revision, percent) for requests to the route's host (`tag` "") or to a tag's host, from status.traffic.

    The default host takes every entry; a tag's host only that tag's entries, all of its traffic to
    them when there is one. Revisions listed twice (a tag and an untagged share) are added up.
    """
    chosen = [t for t in status_traffic if not tag or t.get("tag") == tag]
    weights: dict[str, int] = {}
    for target in chosen:
        name = target.get("revisionName") or ""
        weights[name] = weights.get(name, 0) + int(target.get("percent") or 0)
    if len(weights) == 1:
        return [(next(iter(weights)), 100)]
    return list(weights.items())
