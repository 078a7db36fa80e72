"""RBAC's own controllers: the default roles a cluster starts with, and aggregated ClusterRoles.

* `ensure_bootstrap_policy` is the apiserver's `rbac/bootstrap-roles` post-start hook: it creates the
  default ClusterRoles and ClusterRoleBindings (`bootstrap-policy.yaml`) and, on every start, adds
  back rules and subjects removed from one whose `rbac.authorization.kubernetes.io/autoupdate`
  annotation is not "false".
* `ClusterRoleAggregation` is kube-controller-manager's clusterrole-aggregation controller: a
  ClusterRole with an `aggregationRule` (admin, edit, view) gets the rules of every ClusterRole its
  selectors match, so a CRD's roles labelled `aggregate-to-edit` reach everyone bound to `edit`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from localcluster.api.cluster import Cluster
from localcluster.api.errors import ApiError
from localcluster.api.selectors import selector_from_label_selector_object
from localcluster.store import WatchEvent

log = logging.getLogger("localcluster.rbac")

POLICY_PATH = Path(__file__).with_name("bootstrap-policy.yaml")
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
CLUSTER_ROLES_KEY = "rbac.authorization.k8s.io/clusterroles"
_AGENT = "localcluster/rbac-bootstrap"


def bootstrap_policy() -> list[dict[str, Any]]:
    """The default RBAC objects, the apiserver's own labelled as upstream labels them."""
    policy = yaml.safe_load(POLICY_PATH.read_text())
    for obj in policy["kubernetes"]:
        metadata = obj["metadata"]
        metadata.setdefault("labels", {})["kubernetes.io/bootstrapping"] = "rbac-defaults"
        metadata.setdefault("annotations", {})[AUTOUPDATE] = "true"
    return [*policy["kubernetes"], *policy["knative-serving"]]


def ensure_bootstrap_policy(cluster: Cluster) -> None:
    """Create the missing default roles and bindings; restore what an auto-updated one lost."""
    for wanted in bootstrap_policy():
        resource_type = cluster.registry.by_kind(wanted["apiVersion"], wanted["kind"])
        assert resource_type is not None, wanted["kind"]
        name = wanted["metadata"]["name"]
        existing = cluster.find(resource_type, "", name)
        if existing is None:
            cluster.create(resource_type, "v1", "", wanted, user_agent=_AGENT)
            continue
        if (existing["metadata"].get("annotations") or {}).get(AUTOUPDATE) == "false":
            continue
        changed = False
        for key in ("rules", "subjects"):
            for item in wanted.get(key) or []:
                if item not in (existing.get(key) or []):
                    existing.setdefault(key, []).append(item)
                    changed = True
        if changed:
            cluster.replace(resource_type, "v1", "", name, existing, user_agent=_AGENT)


class ClusterRoleAggregation:
    """Fills each aggregated ClusterRole with the rules of the ClusterRoles its selectors match."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.cluster_roles = cluster.registry.get("rbac.authorization.k8s.io", "clusterroles")

    def reconcile(self, _events: list[WatchEvent]) -> None:
        """Aggregate until nothing changes (admin aggregates edit, which aggregates view), in one pass."""
        for _round in range(8):
            if not self._aggregate_once():
                return

    def _aggregate_once(self) -> bool:
        roles = [entry.obj for entry in self.cluster.store.list(self.cluster_roles.key)[0]]
        changed = False
        for role in roles:
            selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
            if not selectors:
                continue
            rules: list[dict[str, Any]] = []
            for selector in selectors:
                matcher = selector_from_label_selector_object(selector)
                for other in roles:
                    if other is role or not matcher.matches(other["metadata"].get("labels")):
                        continue
                    rules.extend(rule for rule in other.get("rules") or [] if rule not in rules)
            if rules != (role.get("rules") or []):
                changed = self._write(role, rules) or changed
        return changed

    def _write(self, role: dict[str, Any], rules: list[dict[str, Any]]) -> bool:
        name = role["metadata"]["name"]
        updated = {**role, "rules": rules}
        try:
            self.cluster.replace(
                self.cluster_roles, "v1", "", name, updated, user_agent="clusterrole-aggregation-controller"
            )
        except ApiError as exc:
            log.info("clusterrole %s: aggregated rules not written: %s", name, exc.message)
            return False
        return True
