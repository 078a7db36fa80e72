"""The Revision reconciler (pkg/reconciler/revision): a Deployment `<revision>-deployment` per Revision.

The images are resolved first: one localcluster cannot run fails the Revision (ContainerHealthy
False, ContainerMissing) before any Deployment exists, as a failed digest resolution does upstream.
The Deployment's pods carry the `serving.knative.dev/*` labels and the user container gets `PORT` and
`K_SERVICE`, `K_CONFIGURATION`, `K_REVISION`. Its status becomes ResourcesAvailable, a crashing
container becomes ContainerHealthy False with `ExitCode<n>`, and the PodAutoscaler (kept by the
autoscaler) decides Active and the replica counts. A private Service selects the revision's pods,
as the ServerlessService's does, so their Endpoints are what the activator and autoscaler read.

What localcluster has no counterpart for: the queue-proxy sidecar (the service proxy measures and
buffers instead, so pods run the user container alone) and its aggressive readiness probing (the
kubelet probes every second when the revision's probe sets no period, its smallest period).
"""

from __future__ import annotations

import copy

from localcluster.api.cluster import Cluster
from localcluster.api.errors import ApiError
from localcluster.controllers.base import owner_reference, replace_object
from localcluster.controllers.knative._base import (
    KnativeConfig,
    KnativeReconciler,
    Obj,
    controlled_by,
    same,
)
from localcluster.controllers.knative.autoscaling import KPAController
from localcluster.images import pull_error, runs_locally
from localcluster.knative import autoscaler as kpa
from localcluster.knative import conditions as cs
from localcluster.knative.conditions import ConditionManager
from localcluster.knative.keys import (
    APP_LABEL,
    AUTOSCALING_GROUP,
    CONFIGURATION_LABEL,
    DEFAULT_CONTAINER_ANNOTATION,
    REVISION_LABEL,
    REVISION_UID_LABEL,
    ROUTE_LABEL,
    ROUTES_ANNOTATION,
    ROUTING_STATE_LABEL,
    ROUTING_STATE_MODIFIED_ANNOTATION,
    SERVICE_LABEL,
    SERVICE_TYPE_LABEL,
)
from localcluster.knative.names import deployment_name, private_service_name
from localcluster.store import WatchEvent

DEFAULT_USER_PORT = 8080
USER_PORT_NAME = "user-port"
#: Revision spec fields that are Knative's, not the pod's.
_REVISION_FIELDS = ("containerConcurrency", "timeoutSeconds", "idleTimeoutSeconds", "responseStartTimeoutSeconds")
_EXCLUDED_LABELS = {ROUTE_LABEL, ROUTING_STATE_LABEL}
_EXCLUDED_ANNOTATIONS = {
    "serving.knative.dev/lastPinned",
    "serving.knative.dev/no-gc",
    ROUTING_STATE_MODIFIED_ANNOTATION,
    ROUTES_ANNOTATION,
}


def user_port(revision_spec: Obj) -> int:
    """The serving container's first port, 8080 if none is set (getUserPort)."""
    for container in revision_spec.get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("containerPort"):
                return int(port["containerPort"])
    return DEFAULT_USER_PORT


def _labels(revision: Obj) -> dict[str, str]:
    metadata = revision["metadata"]
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k not in _EXCLUDED_LABELS}
    labels.update({REVISION_LABEL: metadata["name"], REVISION_UID_LABEL: metadata["uid"]})
    labels.setdefault(APP_LABEL, metadata["name"])
    return labels


def _annotations(revision: Obj) -> dict[str, str]:
    annotations = revision["metadata"].get("annotations") or {}
    return {
        k: v for k, v in annotations.items() if k not in _EXCLUDED_ANNOTATIONS and not k.startswith(AUTOSCALING_GROUP)
    }


def _serving_container(container: Obj, revision: Obj, port: int) -> Obj:
    """makeServingContainer: the one port named user-port, PORT, and probes aimed at it."""
    container["ports"] = [{"name": USER_PORT_NAME, "containerPort": port}]
    container["env"] = [*(container.get("env") or []), {"name": "PORT", "value": str(port)}]
    probe = container.get("readinessProbe")
    if isinstance(probe, dict):
        for handler in ("httpGet", "tcpSocket"):
            if isinstance(probe.get(handler), dict) and not probe[handler].get("port"):
                probe[handler]["port"] = port
        if not probe.get("periodSeconds"):
            # Knative's aggressive probing (period 0) is the queue-proxy's; the kubelet's fastest is 1s.
            probe["periodSeconds"] = 1
    liveness = container.get("livenessProbe")
    if isinstance(liveness, dict):
        for handler in ("httpGet", "tcpSocket"):
            if isinstance(liveness.get(handler), dict):
                liveness[handler]["port"] = port
    return container


def make_deployment(revision: Obj, config: KnativeConfig) -> Obj:
    """MakeDeployment, without the queue-proxy sidecar (see the module docstring)."""
    metadata = revision["metadata"]
    spec = copy.deepcopy(revision.get("spec") or {})
    port = user_port(spec)
    labels = {
        CONFIGURATION_LABEL: (metadata.get("labels") or {}).get(CONFIGURATION_LABEL, ""),
        SERVICE_LABEL: (metadata.get("labels") or {}).get(SERVICE_LABEL, ""),
    }
    knative_env = [
        {"name": "K_REVISION", "value": metadata["name"]},
        {"name": "K_CONFIGURATION", "value": labels[CONFIGURATION_LABEL]},
        {"name": "K_SERVICE", "value": labels[SERVICE_LABEL]},
    ]
    containers = spec.get("containers") or []
    for container in containers:
        if len(containers) == 1 or container.get("ports"):
            _serving_container(container, revision, port)
        container["env"] = [*(container.get("env") or []), *knative_env]
        container["stdin"] = False
        container["tty"] = False
        container.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
    pod_spec = {k: v for k, v in spec.items() if k not in _REVISION_FIELDS}
    pod_spec["terminationGracePeriodSeconds"] = spec.get("timeoutSeconds") or config.defaults.revision_timeout_seconds
    if "enableServiceLinks" not in pod_spec and config.defaults.enable_service_links is not None:
        pod_spec["enableServiceLinks"] = config.defaults.enable_service_links
    annotations = _annotations(revision)
    pod_annotations = dict(annotations)
    if containers and containers[0].get("name"):
        pod_annotations[DEFAULT_CONTAINER_ANNOTATION] = containers[0]["name"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": _labels(revision),
            "annotations": annotations,
            "ownerReferences": [owner_reference(revision)],
        },
        "spec": {
            "replicas": kpa.initial_scale(metadata.get("annotations"), config.autoscaler),
            "selector": {"matchLabels": {REVISION_UID_LABEL: metadata["uid"]}},
            "progressDeadlineSeconds": int(kpa.progress_deadline(metadata.get("annotations") or {})),
            "revisionHistoryLimit": 0,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": _labels(revision), "annotations": pod_annotations},
                "spec": pod_spec,
            },
        },
    }


def make_private_service(revision: Obj) -> Obj:
    """The ServerlessService's private Service: the revision's pods, by revision UID, on port 80."""
    metadata = revision["metadata"]
    labels = {k: v for k, v in _labels(revision).items() if k != APP_LABEL}
    labels[SERVICE_TYPE_LABEL] = "Private"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": private_service_name(metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(revision)],
        },
        "spec": {
            "selector": {REVISION_UID_LABEL: metadata["uid"]},
            "ports": [{"name": "http", "port": 80, "targetPort": user_port(revision.get("spec") or {})}],
        },
    }


class RevisionReconciler(KnativeReconciler):
    def __init__(self, cluster: Cluster, autoscaler: KPAController) -> None:
        super().__init__(cluster, "revision-controller")
        self.autoscaler = autoscaler

    def reconcile(self, _events: list[WatchEvent]) -> None:
        self.each(self.revisions, cs.REVISION, self._reconcile_kind)

    def _reconcile_kind(self, revision: Obj, status: Obj, manager: ConditionManager) -> None:
        was_ready = (revision.get("status") or {}).get("observedGeneration") == revision["metadata"].get(
            "generation"
        ) and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (revision.get("status") or {}).get("conditions") or []
        )
        if not self._resolve_images(revision, status, manager):
            return
        deployment = self._deployment(revision, manager)
        if deployment is None:
            return
        self._private_service(revision)
        self._propagate_autoscaler(revision, status, manager)
        if not was_ready and manager.is_true():
            self.event(revision, "RevisionReady", "Revision becomes ready upon all resources being ready")

    def _resolve_images(self, revision: Obj, status: Obj, manager: ConditionManager) -> bool:
        """reconcileDigest: every image must be one localcluster can run (it has no registry to resolve)."""
        containers = (revision.get("spec") or {}).get("containers") or []
        for container in containers:
            image = container.get("image", "")
            if not runs_locally(image):
                reason = pull_error(image)
                manager.mark_false(
                    "ContainerHealthy",
                    "ContainerMissing",
                    f'Unable to fetch image "{image}": failed to resolve image to digest: {reason}',
                )
                return False
        # As for registries configured to skip tag resolution: statuses without a digest.
        status["containerStatuses"] = [{"name": c.get("name", "")} for c in containers]
        return True

    def _deployment(self, revision: Obj, manager: ConditionManager) -> Obj | None:
        """reconcileDeployment."""
        metadata = revision["metadata"]
        name = deployment_name(metadata["name"])
        desired = make_deployment(revision, self.config())
        deployment = self.find(self.deployments, metadata["namespace"], name)
        if deployment is None:
            manager.mark_unknown("ResourcesAvailable", "Deploying", "")
            manager.mark_unknown("ContainerHealthy", "Deploying", "")
            try:
                self.create(self.deployments, metadata["namespace"], desired)
            except ApiError as exc:
                self.event(
                    revision, "InternalError", f'failed to create deployment "{name}": {exc.message}', warning=True
                )
            return None
        if not controlled_by(deployment, revision):
            manager.mark_false(
                "ResourcesAvailable", "NotOwned", f'There is an existing Deployment "{name}" that we do not own.'
            )
            return None
        deployment = self._keep_shape(deployment, desired)
        self._propagate_deployment(deployment, manager)
        spec, state = deployment.get("spec") or {}, deployment.get("status") or {}
        if spec.get("replicas", 1) > 0 and not state.get("availableReplicas"):
            self._diagnose_pods(revision, deployment, manager)
        if state.get("readyReplicas", 0) > 0:
            manager.mark_true("ContainerHealthy")
        return deployment

    def _keep_shape(self, deployment: Obj, desired: Obj) -> Obj:
        """checkAndUpdateDeployment: the template and selector as the revision says; replicas stay the KPA's."""
        wanted = {**desired["spec"], "replicas": deployment["spec"].get("replicas", 1)}
        if same(wanted, deployment["spec"]) and same(
            desired["metadata"]["labels"], deployment["metadata"].get("labels")
        ):
            return deployment
        updated = {**deployment, "spec": wanted}
        updated["metadata"] = {**deployment["metadata"], "labels": desired["metadata"]["labels"]}
        return replace_object(self.cluster, self.deployments, updated, self.agent) or deployment

    @staticmethod
    def _propagate_deployment(deployment: Obj, manager: ConditionManager) -> None:
        """TransformDeploymentStatus and PropagateDeploymentStatus: Progressing and ReplicaFailure decide."""
        status, reason, message = cs.UNKNOWN, "Deploying", ""
        failure = None
        for condition in (deployment.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Progressing":
                status = condition.get("status", cs.UNKNOWN)
                reason, message = condition.get("reason", ""), condition.get("message", "")
            elif condition.get("type") == "ReplicaFailure" and condition.get("status") == cs.TRUE:
                failure = (condition.get("reason", ""), condition.get("message", ""))
        if failure is not None:
            manager.mark_false("ResourcesAvailable", *failure)
        elif status == cs.TRUE:
            manager.mark_true("ResourcesAvailable")
        elif status == cs.FALSE:
            manager.mark_false("ResourcesAvailable", reason, message)
        else:
            manager.mark_unknown("ResourcesAvailable", reason, message)

    def _diagnose_pods(self, revision: Obj, deployment: Obj, manager: ConditionManager) -> None:
        """Why no pod is available: a container that exited, or one stuck waiting past the deadline."""
        uid = revision["metadata"]["uid"]
        pods = [
            pod
            for pod in self.objects(self.pods, revision["metadata"]["namespace"])
            if (pod["metadata"].get("labels") or {}).get(REVISION_UID_LABEL) == uid
        ]
        if not pods:
            return
        pod = min(pods, key=lambda p: p["metadata"]["name"])
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == cs.FALSE:
                manager.mark_false("ResourcesAvailable", condition.get("reason", ""), condition.get("message", ""))
                break
        timed_out = any(
            c.get("type") == "Progressing"
            and c.get("status") == cs.FALSE
            and c.get("reason") == "ProgressDeadlineExceeded"
            for c in (deployment.get("status") or {}).get("conditions") or []
        )
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("lastState") or {}).get("terminated")
            waiting = (container.get("state") or {}).get("waiting")
            if terminated:
                code = terminated.get("exitCode", 0)
                text = terminated.get("message", "")
                if code == 0 and not text:
                    text = "container exited with no error"
                manager.mark_false("ContainerHealthy", f"ExitCode{code}", f"Container failed with: {text}")
                return
            if waiting and timed_out:
                manager.mark_false("ResourcesAvailable", waiting.get("reason", ""), waiting.get("message", ""))
                return

    def _private_service(self, revision: Obj) -> None:
        metadata = revision["metadata"]
        if self.find(self.kube_services, metadata["namespace"], private_service_name(metadata["name"])) is None:
            try:
                self.create(self.kube_services, metadata["namespace"], make_private_service(revision))
            except ApiError as exc:
                self.event(
                    revision, "InternalError", f"failed to create the private service: {exc.message}", warning=True
                )

    def _propagate_autoscaler(self, revision: Obj, status: Obj, manager: ConditionManager) -> None:
        """PropagateAutoscalerStatus: the PA's Ready becomes Active; scale counts; initial scale gates readiness."""
        metadata = revision["metadata"]
        pa = self.autoscaler.pod_autoscaler(metadata["namespace"], metadata["name"])
        unavailable = (
            manager.status_of("ResourcesAvailable") == cs.FALSE or manager.status_of("ContainerHealthy") == cs.FALSE
        )
        status.pop("actualReplicas", None)
        status.pop("desiredReplicas", None)
        ready = pa.condition(cs.READY) if pa is not None else None
        if pa is None or ready is None:
            manager.mark_unknown("Active", "Deploying", "")
            if not unavailable:
                manager.mark_unknown("ResourcesAvailable", "Deploying", "")
            return
        if pa.actual_scale is not None and pa.actual_scale >= 0:
            status["actualReplicas"] = pa.actual_scale
        if pa.desired_scale is not None and pa.desired_scale >= 0:
            status["desiredReplicas"] = pa.desired_scale
        if pa.scale_target_initialized and not unavailable:
            manager.mark_true("ResourcesAvailable")
            manager.mark_true("ContainerHealthy")
        if manager.status_of("ResourcesAvailable") == cs.TRUE and (
            not pa.service_name or not pa.scale_target_initialized
        ):
            manager.mark_unknown("ResourcesAvailable", "Deploying", "")
        if ready["status"] == cs.UNKNOWN:
            manager.mark_unknown("Active", ready.get("reason", ""), ready.get("message", ""))
        elif ready["status"] == cs.FALSE:
            if not pa.scale_target_initialized and not unavailable and pa.service_name:
                manager.mark_false("ResourcesAvailable", "ProgressDeadlineExceeded", "Initial scale was never achieved")
            manager.mark_false("Active", ready.get("reason", ""), ready.get("message", ""))
        else:
            manager.mark_true("Active")
