"""Defaulting: the values the real apiserver fills in on create and update, where a lab can see them.

Built-in kinds follow upstream's `SetDefaults_*` functions (pkg/apis/core/v1/defaults.go,
pkg/apis/apps/v1/defaults.go, rbac and discovery), the declarative `+default` markers of the API types
and the few admission plugins and registry strategies whose effect shows in `kubectl get -o yaml`
(a Pod's `serviceAccountName: default`, a Namespace's finalizer, a Service's IP families), and the
status a new object shows (a Deployment's `status: {}`, a Service's `loadBalancer: {}`, a PVC's
`phase: Pending`: the Go structs always marshal them). What later status says is left to controllers.

Custom kinds get structural defaulting: every `default:` of the CRD's openAPIV3Schema is applied where
its parent object exists, as the apiextensions apiserver does.

Defaulting runs on decoded, not yet validated input, so every step skips values of the wrong type and
leaves the reporting of them to validation.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterator
from typing import Any

from localcluster.api.resources import ResourceType

__all__ = ["apply_defaults", "image_pull_policy"]

JsonObject = dict[str, Any]

_PERCENT_25 = "25%"
_DEFAULT_VOLUME_MODE = 0o644  # 420, the defaultMode of configMap, secret, downwardAPI and projected volumes
_PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
_RBAC_GROUP = "rbac.authorization.k8s.io"


def apply_defaults(resource_type: ResourceType, obj: JsonObject) -> None:
    """Fill in, in place, the defaults the apiserver would add to `obj` before validating and storing it."""
    if resource_type.crd_schemas is not None:
        version = _version_of(obj, resource_type)
        apply_schema_defaults(resource_type.crd_schemas[version], obj)
        return
    defaulter = _BUILTIN_DEFAULTERS.get((resource_type.group, resource_type.kind))
    if defaulter is not None:
        defaulter(obj)


def image_pull_policy(image: str) -> str:
    """`Always` for an image tagged `:latest` or not tagged at all, else `IfNotPresent` (as upstream)."""
    name, _, digest = image.partition("@")
    last_segment = name.rsplit("/", 1)[-1]
    tag = last_segment.partition(":")[2] if ":" in last_segment else ("" if digest else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"


def apply_schema_defaults(schema: JsonObject, value: Any) -> None:
    """Structural defaulting: set each property's `default:` wherever its parent object is present."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, child_schema in properties.items():
            if key not in value and "default" in child_schema:
                value[key] = copy.deepcopy(child_schema["default"])
            if key in value:
                apply_schema_defaults(child_schema, value[key])
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key, child in value.items():
                if key not in properties:
                    apply_schema_defaults(additional, child)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_schema_defaults(schema["items"], item)


def _version_of(obj: JsonObject, resource_type: ResourceType) -> str:
    api_version = obj.get("apiVersion")
    if isinstance(api_version, str):
        version = api_version.rpartition("/")[2]
        if version in resource_type.versions:
            return version
    return resource_type.storage_version


# Small accessors that tolerate wrongly typed input (validation reports it later).


def _object(parent: Any, key: str, *, create: bool = False) -> JsonObject | None:
    if not isinstance(parent, dict):
        return None
    if create and parent.get(key) is None:
        parent[key] = {}
    child = parent.get(key)
    return child if isinstance(child, dict) else None


def _objects(parent: Any, key: str) -> Iterator[JsonObject]:
    items = parent.get(key) if isinstance(parent, dict) else None
    if isinstance(items, list):
        yield from (item for item in items if isinstance(item, dict))


def _set_missing(obj: JsonObject, key: str, value: Any) -> None:
    """Set `key` when absent, null or the zero value, as Go's `if x == ""` / `if x == nil` checks do."""
    if obj.get(key) in (None, "", 0):
        obj[key] = value


# Pods and pod templates.


def _default_probe(probe: JsonObject | None) -> None:
    if probe is None:
        return
    for key, value in _PROBE_DEFAULTS.items():
        _set_missing(probe, key, value)
    _default_handler(probe)


def _default_handler(handler: JsonObject | None) -> None:
    http_get = _object(handler, "httpGet")
    if http_get is not None:
        _set_missing(http_get, "path", "/")
        _set_missing(http_get, "scheme", "HTTP")


def _default_field_ref(holder: JsonObject | None) -> None:
    field_ref = _object(holder, "fieldRef")
    if field_ref is not None:
        _set_missing(field_ref, "apiVersion", "v1")


def _default_container(container: JsonObject) -> None:
    image = container.get("image")
    if not container.get("imagePullPolicy") and isinstance(image, str):
        container["imagePullPolicy"] = image_pull_policy(image)
    _set_missing(container, "terminationMessagePath", "/dev/termination-log")
    _set_missing(container, "terminationMessagePolicy", "File")
    # Not omitempty upstream (a struct), so every container shows `resources: {}`.
    if container.get("resources") is None:
        container["resources"] = {}
    for port in _objects(container, "ports"):
        _set_missing(port, "protocol", "TCP")
    for env in _objects(container, "env"):
        _default_field_ref(_object(env, "valueFrom"))
    for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(_object(container, probe_key))
    lifecycle = _object(container, "lifecycle")
    for hook in ("postStart", "preStop"):
        _default_handler(_object(lifecycle, hook))


def _default_volume(volume: JsonObject) -> None:
    if set(volume) <= {"name"}:
        volume["emptyDir"] = {}
    for source_key in ("configMap", "secret", "downwardAPI", "projected"):
        source = _object(volume, source_key)
        if source is not None and source.get("defaultMode") is None:
            source["defaultMode"] = _DEFAULT_VOLUME_MODE
    for item in _objects(_object(volume, "downwardAPI"), "items"):
        _default_field_ref(item)
    for projection in _objects(_object(volume, "projected"), "sources"):
        token = _object(projection, "serviceAccountToken")
        if token is not None and token.get("expirationSeconds") is None:
            token["expirationSeconds"] = 3600
        for item in _objects(_object(projection, "downwardAPI"), "items"):
            _default_field_ref(item)
    host_path = _object(volume, "hostPath")
    if host_path is not None and host_path.get("type") is None:
        host_path["type"] = ""


def _default_pod_spec(spec: JsonObject | None) -> None:
    """SetDefaults_PodSpec and what it reaches: applies to Pods and to pod templates alike."""
    if spec is None:
        return
    _set_missing(spec, "dnsPolicy", "ClusterFirst")
    _set_missing(spec, "restartPolicy", "Always")
    _set_missing(spec, "schedulerName", "default-scheduler")
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    for containers_key in ("initContainers", "containers", "ephemeralContainers"):
        for container in _objects(spec, containers_key):
            _default_container(container)
    for volume in _objects(spec, "volumes"):
        _default_volume(volume)


def _default_pod(pod: JsonObject) -> None:
    """SetDefaults_Pod plus the ServiceAccount admission plugin; templates get only the pod spec defaults."""
    spec = _object(pod, "spec")
    _default_pod_spec(spec)
    if spec is None:
        return
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for containers_key in ("initContainers", "containers"):
        for container in _objects(spec, containers_key):
            _default_requests_to_limits(_object(container, "resources"))


def _default_requests_to_limits(resources: JsonObject | None) -> None:
    limits = _object(resources, "limits")
    if resources is None or not limits:
        return
    requests = _object(resources, "requests", create=True)
    if requests is not None:
        for name, quantity in limits.items():
            requests.setdefault(name, quantity)


def _default_template(spec: JsonObject | None) -> None:
    _default_pod_spec(_object(_object(spec, "template"), "spec"))


# Workloads.


def _default_deployment(deployment: JsonObject) -> None:
    spec = _object(deployment, "spec", create=True)
    if spec is None:
        return
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _object(spec, "strategy", create=True)
    if strategy is not None:
        _set_missing(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling_update = _object(strategy, "rollingUpdate", create=True)
            if rolling_update is not None:
                for key in ("maxUnavailable", "maxSurge"):
                    if rolling_update.get(key) is None:
                        rolling_update[key] = _PERCENT_25
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _default_template(spec)
    _object(deployment, "status", create=True)


def _default_replica_set(replica_set: JsonObject) -> None:
    spec = _object(replica_set, "spec", create=True)
    if spec is None:
        return
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _default_template(spec)
    status = _object(replica_set, "status", create=True)
    if status is not None and status.get("replicas") is None:
        status["replicas"] = 0  # not omitempty in ReplicaSetStatus


def _default_stateful_set(stateful_set: JsonObject) -> None:
    spec = _object(stateful_set, "spec", create=True)
    if spec is None:
        return
    _set_missing(spec, "replicas", 1)
    _set_missing(spec, "podManagementPolicy", "OrderedReady")
    _set_missing(spec, "revisionHistoryLimit", 10)
    strategy = _object(spec, "updateStrategy", create=True)
    if strategy is not None:
        _set_missing(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling_update = _object(strategy, "rollingUpdate", create=True)
            if rolling_update is not None:
                _set_missing(rolling_update, "partition", 0)
    retention = _object(spec, "persistentVolumeClaimRetentionPolicy", create=True)
    if retention is not None:
        _set_missing(retention, "whenDeleted", "Retain")
        _set_missing(retention, "whenScaled", "Retain")
    for claim in _objects(spec, "volumeClaimTemplates"):
        _set_missing(claim, "apiVersion", "v1")
        _set_missing(claim, "kind", "PersistentVolumeClaim")
        _default_persistent_volume_claim(claim)
        status = _object(claim, "status", create=True)
        if status is not None:
            _set_missing(status, "phase", "Pending")
    _default_template(spec)


#: The labels a Job's pods carry (batch/v1 JobNameLabel, ControllerUidLabel and their legacy names).
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"


def _default_job(job: JsonObject) -> None:
    """SetDefaults_Job, and the selector and pod labels the Job strategy generates at create."""
    spec = _object(job, "spec", create=True)
    if spec is None:
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    _set_missing(spec, "parallelism", 1)
    _set_missing(spec, "backoffLimit", 6)
    _set_missing(spec, "completionMode", "NonIndexed")
    _set_missing(spec, "suspend", False)
    if spec.get("podFailurePolicy") is None:
        _set_missing(spec, "podReplacementPolicy", "TerminatingOrFailed")
    metadata = _object(job, "metadata")
    uid, name = (metadata or {}).get("uid"), (metadata or {}).get("name")
    if isinstance(uid, str) and isinstance(name, str) and not spec.get("manualSelector") and "selector" not in spec:
        template = _object(spec, "template", create=True)
        template_metadata = _object(template, "metadata", create=True) if template is not None else None
        labels = _object(template_metadata, "labels", create=True) if template_metadata is not None else None
        if labels is not None:
            labels.setdefault("job-name", name)
            labels.setdefault(JOB_NAME_LABEL, name)
            labels["controller-uid"] = labels[JOB_UID_LABEL] = uid
            spec["selector"] = {"matchLabels": {JOB_UID_LABEL: uid}}
    template_labels = _object(_object(_object(spec, "template"), "metadata"), "labels")
    if metadata is not None and template_labels and not metadata.get("labels"):
        metadata["labels"] = dict(template_labels)  # a Job without labels takes its pods' (SetDefaults_Job)
    _default_template(spec)


# Services and endpoints.


def _default_service(service: JsonObject) -> None:
    """SetDefaults_Service plus the IP family fields the Service registry fills in on a single-stack cluster."""
    spec = _object(service, "spec", create=True)
    if spec is None:
        return
    _set_missing(spec, "type", "ClusterIP")
    _set_missing(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = _object(_object(spec, "sessionAffinityConfig", create=True), "clientIP", create=True)
        if client_ip is not None and client_ip.get("timeoutSeconds") is None:
            client_ip["timeoutSeconds"] = 10800
    for port in _objects(spec, "ports"):
        _set_missing(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and "port" in port:
            port["targetPort"] = port["port"]
    service_type = spec["type"]
    if service_type in ("NodePort", "LoadBalancer"):
        _set_missing(spec, "externalTrafficPolicy", "Cluster")
    if service_type == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    if service_type in ("ClusterIP", "NodePort", "LoadBalancer"):
        _set_missing(spec, "internalTrafficPolicy", "Cluster")
        _set_missing(spec, "ipFamilyPolicy", "SingleStack")
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4"]
    _object(_object(service, "status", create=True), "loadBalancer", create=True)


def _default_endpoints(endpoints: JsonObject) -> None:
    for subset in _objects(endpoints, "subsets"):
        for port in _objects(subset, "ports"):
            _set_missing(port, "protocol", "TCP")


def _default_endpoint_slice(slice_: JsonObject) -> None:
    for port in _objects(slice_, "ports"):
        _set_missing(port, "protocol", "TCP")
        port.setdefault("name", "")


# Configuration, namespaces, storage, RBAC.


def _default_secret(secret: JsonObject) -> None:
    """Type Opaque; `stringData` is merged into base64 `data` and dropped, as the v1 conversion does."""
    _set_missing(secret, "type", "Opaque")
    string_data = secret.get("stringData")
    if not isinstance(string_data, dict):
        return
    data = _object(secret, "data", create=True)
    if data is None:
        return
    for key, text in string_data.items():
        if isinstance(text, str):
            data[key] = base64.b64encode(text.encode()).decode("ascii")
    del secret["stringData"]


def _default_namespace(namespace: JsonObject) -> None:
    """The `kubernetes` finalizer, phase Active and the `kubernetes.io/metadata.name` label."""
    spec = _object(namespace, "spec", create=True)
    if spec is not None and not spec.get("finalizers"):
        spec["finalizers"] = ["kubernetes"]
    status = _object(namespace, "status", create=True)
    if status is not None:
        _set_missing(status, "phase", "Active")
    metadata = _object(namespace, "metadata")
    name = metadata.get("name") if metadata is not None else None
    if isinstance(name, str) and name:
        labels = _object(metadata, "labels", create=True)
        if labels is not None:
            labels["kubernetes.io/metadata.name"] = name


def _default_persistent_volume_claim(claim: JsonObject) -> None:
    spec = _object(claim, "spec")
    if spec is not None:
        _set_missing(spec, "volumeMode", "Filesystem")
    status = _object(claim, "status", create=True)
    if status is not None:
        _set_missing(status, "phase", "Pending")


def _default_role_binding(binding: JsonObject) -> None:
    """Subjects' apiGroup: empty for ServiceAccounts, the RBAC group for users and groups."""
    for subject in _objects(binding, "subjects"):
        if not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = _RBAC_GROUP


_BUILTIN_DEFAULTERS: dict[tuple[str, str], Callable[[JsonObject], None]] = {
    ("", "Pod"): _default_pod,
    ("", "Service"): _default_service,
    ("", "Endpoints"): _default_endpoints,
    ("", "Secret"): _default_secret,
    ("", "Namespace"): _default_namespace,
    ("", "PersistentVolumeClaim"): _default_persistent_volume_claim,
    ("apps", "Deployment"): _default_deployment,
    ("apps", "ReplicaSet"): _default_replica_set,
    ("apps", "StatefulSet"): _default_stateful_set,
    ("batch", "Job"): _default_job,
    ("discovery.k8s.io", "EndpointSlice"): _default_endpoint_slice,
    (_RBAC_GROUP, "RoleBinding"): _default_role_binding,
    (_RBAC_GROUP, "ClusterRoleBinding"): _default_role_binding,
}
