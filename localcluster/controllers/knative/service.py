"""The Knative Service reconciler (pkg/reconciler/service): a Service owns a Configuration and a Route.

Both children are named after the Service and kept equal to what the Service says; the Service's
status is theirs: the Configuration's revision names and ConfigurationsReady, the Route's URL, address,
traffic and RoutesReady. A child that exists but belongs to someone else is reported, never taken over.
"""

from __future__ import annotations

from collections.abc import Callable

from localcluster.api.cluster import Cluster
from localcluster.api.errors import ApiError
from localcluster.api.resources import ResourceType
from localcluster.controllers.base import owner_reference, replace_object
from localcluster.controllers.knative._base import (
    KnativeReconciler,
    Obj,
    condition,
    controlled_by,
    generation,
    same,
)
from localcluster.knative import conditions as cs
from localcluster.knative.conditions import ConditionManager
from localcluster.knative.keys import (
    CONFIGURATION_GENERATION_LABEL,
    LAST_APPLIED_ANNOTATION,
    ROLLOUT_DURATION_ANNOTATIONS,
    ROUTES_ANNOTATION,
    SERVICE_LABEL,
    SERVICE_UID_LABEL,
)
from localcluster.store import WatchEvent


def make_configuration(service: Obj, existing: Obj | None = None) -> Obj:
    """MakeConfigurationFromExisting: the Service's template, labels and annotations, and the routes annotation."""
    metadata = service["metadata"]
    excluded = {LAST_APPLIED_ANNOTATION, *ROLLOUT_DURATION_ANNOTATIONS}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k not in excluded}
    routes = set(
        filter(
            None, ((existing or {}).get("metadata", {}).get("annotations") or {}).get(ROUTES_ANNOTATION, "").split(",")
        )
    )
    annotations[ROUTES_ANNOTATION] = ",".join(sorted(routes | {metadata["name"]}))
    labels = {**(metadata.get("labels") or {}), SERVICE_LABEL: metadata["name"], SERVICE_UID_LABEL: metadata["uid"]}
    return {
        "apiVersion": service["apiVersion"],
        "kind": "Configuration",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "ownerReferences": [owner_reference(service)],
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"template": service["spec"].get("template") or {}},
    }


def make_route(service: Obj) -> Obj:
    """MakeRoute: the Service's traffic, with the Configuration's name where no revision is pinned."""
    metadata = service["metadata"]
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k != LAST_APPLIED_ANNOTATION}
    traffic = []
    for target in service["spec"].get("traffic") or []:
        target = dict(target)
        if not target.get("revisionName"):
            target["configurationName"] = metadata["name"]
        traffic.append(target)
    return {
        "apiVersion": service["apiVersion"],
        "kind": "Route",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "ownerReferences": [owner_reference(service)],
            "labels": {**(metadata.get("labels") or {}), SERVICE_LABEL: metadata["name"]},
            "annotations": annotations,
        },
        "spec": {"traffic": traffic},
    }


class ServiceReconciler(KnativeReconciler):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster, "service-controller")

    def reconcile(self, _events: list[WatchEvent]) -> None:
        self.each(self.services, cs.SERVICE, self._reconcile_kind)

    def _reconcile_kind(self, service: Obj, status: Obj, manager: ConditionManager) -> None:
        configuration = self._child(service, self.configurations, make_configuration, manager, "ConfigurationsReady")
        if configuration is None:
            return
        template_name = ((configuration["spec"].get("template") or {}).get("metadata") or {}).get("name")
        if generation(configuration) != (configuration.get("status") or {}).get("observedGeneration"):
            manager.mark_unknown(
                "ConfigurationsReady",
                "OutOfDate",
                "The Configuration is still working to reflect the latest desired specification.",
            )
            if template_name:
                return  # a named revision: wait for the Configuration before moving the Route to it
        else:
            self._propagate_configuration(configuration, status, manager)
        if template_name and self._revision_name_taken(configuration, template_name):
            manager.mark_false(
                "RoutesReady",
                "RevisionNameTaken",
                f'The revision name "{template_name}" is taken by a conflicting Revision, so traffic will not be '
                "migrated",
            )
            return
        route = self._child(service, self.routes, lambda s, _existing: make_route(s), manager, "RoutesReady")
        if route is None:
            return
        if generation(route) != (route.get("status") or {}).get("observedGeneration"):
            manager.mark_unknown(
                "RoutesReady", "OutOfDate", "The Route is still working to reflect the latest desired specification."
            )
        else:
            self._propagate_route(route, status, manager)
        self._check_routes_not_ready(configuration, route, status, manager)

    def _child(
        self,
        service: Obj,
        resource_type: ResourceType,
        make: Callable[[Obj, Obj | None], Obj],
        manager: ConditionManager,
        condition_type: str,
    ) -> Obj | None:
        """The Configuration or Route of the Service: created, kept as the Service says, or reported NotOwned."""
        metadata = service["metadata"]
        kind = resource_type.kind
        existing = self.find(resource_type, metadata["namespace"], metadata["name"])
        if existing is None:
            try:
                created = self.create(resource_type, metadata["namespace"], make(service, None))
            except ApiError as exc:
                self.event(
                    service,
                    "CreationFailed",
                    f'Failed to create {kind} "{metadata["name"]}": {exc.message}',
                    warning=True,
                )
                raise
            self.event(service, "Created", f'Created {kind} "{metadata["name"]}"')
            return created
        if not controlled_by(existing, service):
            manager.mark_false(
                condition_type, "NotOwned", f'There is an existing {kind} "{metadata["name"]}" that we do not own.'
            )
            return None
        desired = make(service, existing)
        wanted = {
            "spec": desired["spec"],
            "labels": desired["metadata"]["labels"],
            "annotations": desired["metadata"]["annotations"],
        }
        current = {
            "spec": existing["spec"],
            "labels": existing["metadata"].get("labels") or {},
            "annotations": existing["metadata"].get("annotations") or {},
        }
        if same(wanted, current):
            return existing
        updated = {**existing, "spec": desired["spec"]}
        updated["metadata"] = {
            **existing["metadata"],
            "labels": desired["metadata"]["labels"],
            "annotations": desired["metadata"]["annotations"],
        }
        return replace_object(self.cluster, resource_type, updated, self.agent) or existing

    @staticmethod
    def _propagate_configuration(configuration: Obj, status: Obj, manager: ConditionManager) -> None:
        """PropagateConfigurationStatus."""
        child = configuration.get("status") or {}
        for field in ("latestReadyRevisionName", "latestCreatedRevisionName"):
            if child.get(field):
                status[field] = child[field]
            else:
                status.pop(field, None)
        _propagate(condition(configuration), "ConfigurationsReady", manager)

    @staticmethod
    def _propagate_route(route: Obj, status: Obj, manager: ConditionManager) -> None:
        """PropagateRouteStatus."""
        child = route.get("status") or {}
        for field in ("url", "address", "traffic"):
            if child.get(field):
                status[field] = child[field]
            else:
                status.pop(field, None)
        _propagate(condition(route), "RoutesReady", manager)

    def _revision_name_taken(self, configuration: Obj, name: str) -> bool:
        """CheckNameAvailability: the named revision exists but is another's, or another generation's spec."""
        revision = self.find(self.revisions, configuration["metadata"]["namespace"], name)
        if revision is None:
            return False
        if not controlled_by(revision, configuration):
            return True
        labels = revision["metadata"].get("labels") or {}
        if labels.get(CONFIGURATION_GENERATION_LABEL) == str(generation(configuration)):
            return False
        return not same(revision.get("spec"), (configuration["spec"].get("template") or {}).get("spec"))

    @staticmethod
    def _check_routes_not_ready(configuration: Obj, route: Obj, status: Obj, manager: ConditionManager) -> None:
        """checkRoutesNotReady: RoutesReady only once the Route serves what the Service asks for."""
        if manager.status_of("RoutesReady") != cs.TRUE:
            return
        wanted = route["spec"].get("traffic") or []
        got = (route.get("status") or {}).get("traffic") or []
        ready_name = (configuration.get("status") or {}).get("latestReadyRevisionName", "")

        def comparable(target: Obj, *, resolve: bool) -> Obj:
            target = {k: v for k, v in target.items() if k not in ("url", "latestRevision")}
            if resolve and target.get("configurationName") == configuration["metadata"]["name"]:
                target.pop("configurationName")
                target["revisionName"] = ready_name
            return target

        if len(wanted) != len(got) or not same(
            [comparable(t, resolve=True) for t in wanted], [comparable(t, resolve=False) for t in got]
        ):
            manager.mark_unknown(
                "RoutesReady", "TrafficNotMigrated", "Traffic is not yet migrated to the latest revision."
            )


def _propagate(child: Obj | None, condition_type: str, manager: ConditionManager) -> None:
    if child is None:
        return
    if child.get("status") == cs.TRUE:
        manager.mark_true(condition_type)
    elif child.get("status") == cs.FALSE:
        manager.mark_false(condition_type, child.get("reason", ""), child.get("message", ""))
    else:
        manager.mark_unknown(condition_type, child.get("reason", ""), child.get("message", ""))
