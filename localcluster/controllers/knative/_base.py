"""What the Knative reconcilers share: typed access to the objects, and the generated reconciler's frame.

Upstream's generated reconcilers (knative.dev/pkg/reconciler) wrap each ReconcileKind the same way:
initialise the conditions, reset Ready when a new generation is seen, run the kind's logic on a copy
of the status, set observedGeneration, and write the status only if it changed. `each` does that
here, so every reconciler reads as its upstream ReconcileKind.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from localcluster.api.cluster import Cluster, now
from localcluster.api.errors import ApiError
from localcluster.api.resources import ResourceType
from localcluster.controllers.base import write_status
from localcluster.knative import config as knative_config
from localcluster.knative.conditions import READY, ConditionManager, ConditionSet
from localcluster.knative.keys import GROUP

log = logging.getLogger("localcluster.knative")

Obj = dict[str, Any]

#: Storage keys of the kinds the Knative reconcilers watch.
SERVICES = f"{GROUP}/services"
CONFIGURATIONS = f"{GROUP}/configurations"
ROUTES = f"{GROUP}/routes"
REVISIONS = f"{GROUP}/revisions"
CONFIGMAPS = "core/configmaps"


@dataclass(frozen=True)
class KnativeConfig:
    """The controllers' view of the knative-serving ConfigMaps."""

    autoscaler: knative_config.AutoscalerConfig
    defaults: knative_config.DefaultsConfig
    domain: knative_config.DomainConfig
    network: knative_config.NetworkConfig


def controlled_by(obj: Obj, owner: Obj) -> bool:
    return any(
        ref.get("controller") and ref.get("uid") == owner["metadata"]["uid"]
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def generation(obj: Obj) -> int:
    return int(obj["metadata"].get("generation", 1))


def observed(obj: Obj) -> bool:
    """The object's controller has reconciled its latest generation."""
    return (obj.get("status") or {}).get("observedGeneration") == generation(obj)


def condition(obj: Obj | None, kind: str = READY) -> Obj | None:
    for found in ((obj or {}).get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return found
    return None


class KnativeReconciler:
    """Base of the serving reconcilers: the cluster, the agent name events carry, and helpers."""

    def __init__(self, cluster: Cluster, agent: str) -> None:
        self.cluster = cluster
        self.agent = agent
        registry = cluster.registry
        self.services = registry.get(GROUP, "services")
        self.configurations = registry.get(GROUP, "configurations")
        self.routes = registry.get(GROUP, "routes")
        self.revisions = registry.get(GROUP, "revisions")
        self.deployments = registry.get("apps", "deployments")
        self.kube_services = registry.get("", "services")
        self.endpoints = registry.get("", "endpoints")
        self.pods = registry.get("", "pods")
        self.configmaps = registry.get("", "configmaps")
        self._config_cache: tuple[tuple[str, ...], KnativeConfig] | None = None

    # -- reading -------------------------------------------------------------------------------

    def objects(self, resource_type: ResourceType, namespace: str | None = None) -> list[Obj]:
        entries, _version = self.cluster.store.list(resource_type.key, namespace)
        return [entry.obj for entry in entries]

    def find(self, resource_type: ResourceType, namespace: str, name: str) -> Obj | None:
        entry = self.cluster.store.get(resource_type.key, namespace, name)
        return None if entry is None else entry.obj

    def config(self) -> KnativeConfig:
        """The ConfigMaps as last stored; one that does not load falls back to upstream's defaults."""
        names = (knative_config.AUTOSCALER, knative_config.DEFAULTS, knative_config.DOMAIN, knative_config.NETWORK)
        entries = [self.cluster.store.get(CONFIGMAPS, knative_config.SYSTEM_NAMESPACE, name) for name in names]
        versions = tuple(e.obj["metadata"]["resourceVersion"] if e else "" for e in entries)
        if self._config_cache is None or self._config_cache[0] != versions:
            data = [(e.obj.get("data") or {}) if e else None for e in entries]
            parsed = [
                _load(knative_config.AutoscalerConfig, data[0]),
                _load(knative_config.DefaultsConfig, data[1]),
                _load(knative_config.DomainConfig, data[2]),
                _load(knative_config.NetworkConfig, data[3]),
            ]
            self._config_cache = (versions, KnativeConfig(*parsed))
        return self._config_cache[1]

    # -- writing -------------------------------------------------------------------------------

    def create(self, resource_type: ResourceType, namespace: str, obj: Obj) -> Obj:
        """Create through the API pipeline (defaults, webhooks, validation); ApiError on refusal."""
        return self.cluster.create(resource_type, "v1", namespace, obj, user_agent=self.agent).obj

    def event(self, involved: Obj, reason: str, message: str, *, warning: bool = False) -> None:
        self.cluster.record_event(
            involved, reason, message, event_type="Warning" if warning else "Normal", component=self.agent
        )

    # -- the generated reconciler's frame -------------------------------------------------------

    def each(
        self,
        resource_type: ResourceType,
        condition_set: ConditionSet,
        reconcile_kind: Callable[[Obj, Obj, ConditionManager], None],
    ) -> None:
        """For every live object: PreProcessReconcile, ReconcileKind, PostProcessReconcile, status write."""
        for obj in self.objects(resource_type):
            if obj["metadata"].get("deletionTimestamp"):
                continue
            status = copy.deepcopy(obj.get("status") or {})
            manager = condition_set.manage(status, now())
            manager.initialize()
            if status.get("observedGeneration") != generation(obj):
                manager.mark_unknown(READY, "NewObservedGenFailure", "unsuccessfully observed a new generation")
            try:
                reconcile_kind(obj, status, manager)
            except ApiError as exc:
                log.info("%s: %s/%s: %s", self.agent, resource_type.kind, obj["metadata"]["name"], exc.message)
            except Exception:
                # One object's failure must not hold up the others; its status is still written.
                log.exception("%s: reconciling %s/%s failed", self.agent, resource_type.kind, obj["metadata"]["name"])
            status["observedGeneration"] = generation(obj)
            _keep_transition_times(obj.get("status") or {}, status)
            write_status(self.cluster, resource_type, obj, status, self.agent)


def _keep_transition_times(before: Obj, after: Obj) -> None:
    """A condition that ends a pass as it began keeps its lastTransitionTime.

    Within one pass a condition may move and move back (True, then Unknown again); upstream's
    VolatileTime does not count in the status comparison, so such a pass writes nothing. Here the
    stored time is put back, with the same effect.
    """
    previous = {c.get("type"): c for c in before.get("conditions") or []}
    for condition_now in after.get("conditions") or []:
        old = previous.get(condition_now.get("type"))
        if old is not None and {k: v for k, v in old.items() if k != "lastTransitionTime"} == {
            k: v for k, v in condition_now.items() if k != "lastTransitionTime"
        }:
            condition_now["lastTransitionTime"] = old.get("lastTransitionTime", condition_now.get("lastTransitionTime"))


def _load(config_type: Any, data: Mapping[str, str] | None) -> Any:
    try:
        return config_type.from_data(data)
    except knative_config.ConfigError as exc:
        log.warning("knative: %s does not load (%s); using upstream's defaults", config_type.__name__, exc)
        return config_type()


def same(left: Any, right: Any) -> bool:
    """Semantic equality of JSON values (key order does not matter)."""
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)


def install_reference_config(cluster: Cluster, reference_dir: Path) -> None:
    """Create namespace knative-serving and Knative's ConfigMaps from shared/reference, where missing.

    Existing ConfigMaps are left alone: an attendee's edits survive a restart, as on a real cluster.
    """
    namespaces = cluster.registry.get("", "namespaces")
    if cluster.find(namespaces, "", knative_config.SYSTEM_NAMESPACE) is None:
        cluster.create(
            namespaces,
            "v1",
            "",
            {"metadata": {"name": knative_config.SYSTEM_NAMESPACE}},
            user_agent="localcluster/bootstrap",
        )
    configmaps = cluster.registry.get("", "configmaps")
    for name, file_name in knative_config.REFERENCE_FILES.items():
        if cluster.find(configmaps, knative_config.SYSTEM_NAMESPACE, name) is not None:
            continue
        path = reference_dir / file_name
        try:
            manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise SystemExit(f"cannot read Knative's reference ConfigMap {path}: {exc}") from None
        cluster.create(configmaps, "v1", knative_config.SYSTEM_NAMESPACE, manifest, user_agent="localcluster/bootstrap")
