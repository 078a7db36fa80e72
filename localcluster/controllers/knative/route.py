"""The Route reconciler (pkg/reconciler/route) and the routing labeler (pkg/reconciler/labeler).

A Route resolves its traffic to ready revisions (`localcluster.knative.traffic`), takes its URL and
its tags' URLs from config-domain and config-network, and reserves its host names with placeholder
Services (`<route>`, `<tag>-<route>`), as upstream does so no Kubernetes Service can take them. The
service proxy routes those hosts from the Route's status (`localcluster.network.knative`), so once
the status is written the ingress is programmed: IngressReady follows AllTrafficAssigned.

The labeler marks what a Route sends traffic to: the `serving.knative.dev/routes` annotation on
Configurations and Revisions, and each Revision's routingState label, `active` while routed and
`reserve` once not (a reserve revision is unreachable: the autoscaler lets it go to zero at once).
"""

from __future__ import annotations

from localcluster.api.cluster import Cluster, now
from localcluster.api.errors import ApiError
from localcluster.api.resources import ResourceType
from localcluster.controllers.base import owner_reference, replace_object
from localcluster.controllers.knative._base import KnativeReconciler, Obj, controlled_by, same
from localcluster.knative import conditions as cs
from localcluster.knative import traffic as routing
from localcluster.knative.conditions import ConditionManager
from localcluster.knative.domains import DomainNameError, domain_name, hostname
from localcluster.knative.keys import (
    ROUTE_LABEL,
    ROUTES_ANNOTATION,
    ROUTING_STATE_LABEL,
    ROUTING_STATE_MODIFIED_ANNOTATION,
    VISIBILITY_CLUSTER_LOCAL,
    VISIBILITY_LABEL,
)
from localcluster.store import WatchEvent

EXTERNAL_DOMAIN_TLS_NOT_ENABLED = "external-domain-tls is not enabled"


def make_placeholder_service(route: Obj, host_label: str, domain: str) -> Obj:
    """MakeK8sPlaceholderService: an ExternalName Service named like the host, owned by the Route."""
    metadata = route["metadata"]
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != VISIBILITY_LABEL}
    labels[ROUTE_LABEL] = metadata["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": host_label,
            "namespace": metadata["namespace"],
            "labels": labels,
            "annotations": dict(metadata.get("annotations") or {}),
            "ownerReferences": [owner_reference(route)],
        },
        "spec": {
            "type": "ExternalName",
            "externalName": domain,
            "sessionAffinity": "None",
            "ports": [{"name": "http2", "appProtocol": "kubernetes.io/h2c", "port": 80, "targetPort": 80}],
        },
    }


class RouteReconciler(KnativeReconciler):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster, "route-controller")

    def reconcile(self, _events: list[WatchEvent]) -> None:
        self.each(self.routes, cs.ROUTE, self._reconcile_kind)
        self._label_routed_objects()

    def _reconcile_kind(self, route: Obj, status: Obj, manager: ConditionManager) -> None:
        metadata = route["metadata"]
        namespace = metadata["namespace"]
        if status.get("observedGeneration") != metadata.get("generation"):
            manager.mark_unknown("IngressReady", "IngressNotConfigured", "Ingress has not yet been reconciled.")
        config, error = routing.build(
            route,
            lambda name: self.find(self.configurations, namespace, name),
            lambda name: self.find(self.revisions, namespace, name),
        )
        knative = self.config()
        try:
            host = domain_name(metadata, metadata["name"], knative.domain, knative.network)
        except DomainNameError as exc:
            manager.mark_false("AllTrafficAssigned", "ErrorConfig", str(exc))
            return
        cluster_local = (metadata.get("labels") or {}).get(VISIBILITY_LABEL) == VISIBILITY_CLUSTER_LOCAL
        scheme = "http" if cluster_local else knative.network.default_external_scheme
        status["url"] = f"{scheme}://{host}"
        if error is not None:
            if error.failure:
                manager.mark_false("AllTrafficAssigned", error.reason, error.message)
            else:
                manager.mark_unknown("AllTrafficAssigned", error.reason, error.message)
            return
        assert config is not None
        try:
            status["traffic"] = self._status_traffic(route, config)
        except DomainNameError as exc:
            manager.mark_false("AllTrafficAssigned", "ErrorConfig", str(exc))
            return
        manager.mark_true("AllTrafficAssigned")
        status["address"] = {"url": f"http://{metadata['name']}.{namespace}.svc.cluster.local"}
        if not self._placeholder_services(route, config, manager):
            return
        manager.mark_true("CertificateProvisioned", "TLSNotEnabled", EXTERNAL_DOMAIN_TLS_NOT_ENABLED)
        # The service proxy reads the traffic from this status: writing it programs the ingress.
        manager.mark_true("IngressReady")

    def _status_traffic(self, route: Obj, config: routing.TrafficConfig) -> list[Obj]:
        """GetRevisionTrafficTargets: one entry per target, a tag's with the tag's URL."""
        knative = self.config()
        entries = []
        for target in config.targets:
            entry: Obj = {"revisionName": target.revision_name, "latestRevision": target.latest_revision}
            entry["percent"] = target.percent
            if target.tag:
                entry = {"tag": target.tag, **entry}
                label = hostname(route["metadata"]["name"], target.tag, knative.network)
                host = domain_name(route["metadata"], label, knative.domain, knative.network)
                entry["url"] = f"http://{host}"
            entries.append(entry)
        return entries

    def _placeholder_services(self, route: Obj, config: routing.TrafficConfig, manager: ConditionManager) -> bool:
        """reconcilePlaceholderServices: one per host label; a name taken by another object is NotOwned."""
        knative = self.config()
        metadata = route["metadata"]
        wanted = {}
        for tag in sorted(config.by_tag):
            label = hostname(metadata["name"], tag, knative.network)
            wanted[label] = make_placeholder_service(
                route, label, domain_name(metadata, label, knative.domain, knative.network)
            )
        for name, desired in wanted.items():
            existing = self.find(self.kube_services, metadata["namespace"], name)
            if existing is None:
                try:
                    self.create(self.kube_services, metadata["namespace"], desired)
                except ApiError as exc:
                    manager.mark_false("IngressReady", "InternalError", exc.message)
                    return False
            elif not controlled_by(existing, route):
                manager.mark_false(
                    "IngressReady", "NotOwned", f'There is an existing placeholder Service "{name}" that we do not own.'
                )
                return False
            elif not same(existing["spec"].get("externalName"), desired["spec"]["externalName"]):
                replace_object(
                    self.cluster,
                    self.kube_services,
                    {**existing, "spec": {**existing["spec"], **desired["spec"]}},
                    self.agent,
                )
        for service in self.objects(self.kube_services, metadata["namespace"]):
            if controlled_by(service, route) and service["metadata"]["name"] not in wanted:
                try:
                    self.cluster.delete(self.kube_services, metadata["namespace"], service["metadata"]["name"])
                except ApiError as exc:
                    manager.mark_false("IngressReady", "InternalError", exc.message)
                    return False
        return True

    # -- the labeler ------------------------------------------------------------------------------

    def _label_routed_objects(self) -> None:
        """syncRoutingMeta for every Route: which Configurations and Revisions each one routes to."""
        routed_revisions: dict[tuple[str, str], set[str]] = {}
        routed_configurations: dict[tuple[str, str], set[str]] = {}
        for route in self.objects(self.routes):
            namespace, route_name = route["metadata"]["namespace"], route["metadata"]["name"]
            targets = [*((route.get("status") or {}).get("traffic") or []), *(route["spec"].get("traffic") or [])]
            for target in targets:
                configuration_name = target.get("configurationName") or ""
                revision_name = target.get("revisionName") or ""
                if revision_name:
                    revision = self.find(self.revisions, namespace, revision_name)
                    if revision is None:
                        continue
                    routed_revisions.setdefault((namespace, revision_name), set()).add(route_name)
                    owner = next(
                        (r for r in revision["metadata"].get("ownerReferences") or [] if r.get("controller")), None
                    )
                    if owner and owner.get("kind") == "Configuration":
                        configuration_name = owner["name"]
                if configuration_name:
                    configuration = self.find(self.configurations, namespace, configuration_name)
                    if configuration is None:
                        continue
                    routed_configurations.setdefault((namespace, configuration_name), set()).add(route_name)
                    latest = (configuration.get("status") or {}).get("latestCreatedRevisionName")
                    if latest and target.get("latestRevision"):
                        routed_revisions.setdefault((namespace, latest), set()).add(route_name)
        for revision in self.objects(self.revisions):
            key = (revision["metadata"]["namespace"], revision["metadata"]["name"])
            self._set_routing_meta(self.revisions, revision, routed_revisions.get(key, set()), with_state=True)
        for configuration in self.objects(self.configurations):
            key = (configuration["metadata"]["namespace"], configuration["metadata"]["name"])
            self._set_routing_meta(
                self.configurations, configuration, routed_configurations.get(key, set()), with_state=False
            )

    def _set_routing_meta(self, resource_type: ResourceType, obj: Obj, routes: set[str], *, with_state: bool) -> None:
        metadata = obj["metadata"]
        if metadata.get("deletionTimestamp"):
            return
        annotations = dict(metadata.get("annotations") or {})
        labels = dict(metadata.get("labels") or {})
        if routes:
            annotations[ROUTES_ANNOTATION] = ",".join(sorted(routes))
        else:
            annotations.pop(ROUTES_ANNOTATION, None)
        if with_state:
            state = "active" if routes else "reserve"
            if labels.get(ROUTING_STATE_LABEL) == "pending" and not routes:
                state = "pending"  # a new revision no route has picked up yet
            if labels.get(ROUTING_STATE_LABEL) != state:
                labels[ROUTING_STATE_LABEL] = state
                annotations[ROUTING_STATE_MODIFIED_ANNOTATION] = now()
        if annotations == (metadata.get("annotations") or {}) and labels == (metadata.get("labels") or {}):
            return
        replace_object(
            self.cluster,
            resource_type,
            {**obj, "metadata": {**metadata, "annotations": annotations, "labels": labels}},
            self.agent,
        )
