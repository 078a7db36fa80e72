"""Hand-written rules for built-in kinds: the checks of pkg/apis/core/validation and apps/validation
that a lab can run into, worded as upstream words them.

They run after the structural walk, so every present value has its schema's JSON type; absent and null
fields are treated alike.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from typing import Any

from localcluster.api.errors import Cause
from localcluster.api.resources import ResourceType
from localcluster.api.validation import _fields
from localcluster.api.validation._fields import child, index

JsonObject = dict[str, Any]
Rule = Callable[[JsonObject, JsonObject | None], list[Cause]]

MAX_CONFIG_BYTES = 1024 * 1024
MAX_ANNOTATIONS_BYTES = 256 * 1024
_PERCENT = re.compile(r"[0-9]+%")
_PERCENT_ERROR = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex "
    "used for validation is '[0-9]+%')"
)
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_VOLUME_SOURCE_EXEMPT = frozenset({"name"})
_POD_UPDATE_ERROR = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)

#: How upstream validates `metadata.name` per kind; any other kind (and every CRD) uses DNS-1123 subdomains.
_NAME_RULES: dict[tuple[str, str], Callable[[str, str], list[Cause]]] = {
    ("", "Namespace"): _fields.dns1123_label,
    ("", "Service"): _fields.dns1035_label,
    ("rbac.authorization.k8s.io", "Role"): _fields.path_segment_name,
    ("rbac.authorization.k8s.io", "RoleBinding"): _fields.path_segment_name,
    ("rbac.authorization.k8s.io", "ClusterRole"): _fields.path_segment_name,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _fields.path_segment_name,
}


def _dict(value: Any) -> JsonObject:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _items(parent: JsonObject, key: str, path: str) -> Iterable[tuple[str, JsonObject]]:
    for position, item in enumerate(_list(parent.get(key))):
        if isinstance(item, dict):
            yield index(child(path, key), position), item


# Object metadata.


def metadata(resource_type: ResourceType, obj: JsonObject) -> list[Cause]:
    """ValidateObjectMeta: name (or generateName), namespace scope, labels and annotations."""
    meta = _dict(obj.get("metadata"))
    causes: list[Cause] = []
    name = meta.get("name")
    if not name:
        if not meta.get("generateName"):
            causes.append(_fields.required("metadata.name", "name or generateName is required"))
    else:
        name_rule = _NAME_RULES.get((resource_type.group, resource_type.kind), _fields.dns1123_subdomain)
        causes += name_rule("metadata.name", name)
    namespace = meta.get("namespace")
    if resource_type.namespaced and namespace:
        causes += _fields.dns1123_label("metadata.namespace", namespace)
    elif not resource_type.namespaced and namespace:
        causes.append(_fields.forbidden("metadata.namespace", "not allowed on this type"))
    causes += _fields.labels("metadata.labels", meta.get("labels"))
    annotations = _dict(meta.get("annotations"))
    for annotation_key in annotations:
        causes += _fields.qualified_name("metadata.annotations", annotation_key)
    size = sum(len(k) + len(str(v)) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        causes.append(_fields.too_long("metadata.annotations", MAX_ANNOTATIONS_BYTES))
    return causes


# Pods and pod templates.


def _probe(probe: JsonObject, path: str, *, success_must_be_one: bool) -> list[Cause]:
    causes: list[Cause] = []
    handlers = [name for name in _PROBE_HANDLERS if probe.get(name) is not None]
    if not handlers:
        causes.append(_fields.required(path, "must specify a handler type"))
    for extra in handlers[1:]:
        causes.append(_fields.forbidden(child(path, extra), "may not specify more than 1 handler type"))
    causes += _non_negative(
        probe, path, ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold")
    )
    if success_must_be_one and probe.get("successThreshold") not in (None, 1):
        causes.append(_fields.invalid(child(path, "successThreshold"), probe["successThreshold"], "must be 1"))
    http_get = _dict(probe.get("httpGet"))
    if probe.get("httpGet") is not None:
        causes += _fields.port_number_or_name(child(child(path, "httpGet"), "port"), http_get.get("port"))
    tcp_socket = _dict(probe.get("tcpSocket"))
    if probe.get("tcpSocket") is not None:
        causes += _fields.port_number_or_name(child(child(path, "tcpSocket"), "port"), tcp_socket.get("port"))
    return causes


def _container(container: JsonObject, path: str, volume_names: set[str], port_names: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    if not container.get("image"):
        causes.append(_fields.required(child(path, "image")))
    policy = container.get("imagePullPolicy")
    if policy and policy not in ("Always", "IfNotPresent", "Never"):
        causes.append(
            _fields.not_supported(child(path, "imagePullPolicy"), policy, ("Always", "IfNotPresent", "Never"))
        )
    for port_path, port in _items(container, "ports", path):
        container_port = port.get("containerPort")
        if container_port is None:
            causes.append(_fields.required(child(port_path, "containerPort")))
        else:
            causes += _fields.port_number(child(port_path, "containerPort"), container_port)
        port_name = port.get("name")
        if port_name:
            causes += _unique_name(child(port_path, "name"), port_name, port_names, _fields.port_name)
        protocol = port.get("protocol")
        if protocol and protocol not in _PROTOCOLS:
            causes.append(_fields.not_supported(child(port_path, "protocol"), protocol, _PROTOCOLS))
    for env_path, env in _items(container, "env", path):
        if not env.get("name"):
            causes.append(_fields.required(child(env_path, "name")))
    for mount_path, mount in _items(container, "volumeMounts", path):
        mount_name = mount.get("name")
        if not mount_name:
            causes.append(_fields.required(child(mount_path, "name")))
        elif mount_name not in volume_names:
            causes.append(_fields.not_found(child(mount_path, "name"), mount_name))
        if not mount.get("mountPath"):
            causes.append(_fields.required(child(mount_path, "mountPath")))
    for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_key)
        if isinstance(probe, dict):
            causes += _probe(probe, child(path, probe_key), success_must_be_one=probe_key != "readinessProbe")
    return causes


def _non_negative(obj: JsonObject, path: str, keys: tuple[str, ...]) -> list[Cause]:
    """ValidateNonnegativeField for each of `keys` that `obj` holds as an integer."""
    return [
        _fields.invalid(child(path, key), obj[key], "must be greater than or equal to 0")
        for key in keys
        if isinstance(obj.get(key), int) and obj[key] < 0
    ]


def _unique_name(field: str, name: str, seen: set[str], syntax: Callable[[str, str], list[Cause]]) -> list[Cause]:
    """A list item's name by its syntax rule, and a Duplicate value if an earlier item had it (`seen` remembers)."""
    duplicate = [_fields.duplicate(field, name)] if name in seen else []
    seen.add(name)
    return syntax(field, name) + duplicate


def _volumes(spec: JsonObject, path: str) -> tuple[list[Cause], set[str]]:
    causes: list[Cause] = []
    names: set[str] = set()
    for volume_path, volume in _items(spec, "volumes", path):
        name = volume.get("name")
        if not name:
            causes.append(_fields.required(child(volume_path, "name")))
        else:
            causes += _unique_name(child(volume_path, "name"), name, names, _fields.dns1123_label)
        sources = [key for key, value in volume.items() if key not in _VOLUME_SOURCE_EXEMPT and value is not None]
        if not sources:
            causes.append(_fields.required(volume_path, "must specify a volume type"))
        for extra in sources[1:]:
            causes.append(_fields.forbidden(child(volume_path, extra), "may not specify more than 1 volume type"))
    return causes, names


def pod_spec(spec: JsonObject, path: str, *, allowed_restart_policies: tuple[str, ...] | None = None) -> list[Cause]:
    """ValidatePodSpec, the parts labs reach; templates of workloads narrow the restart policies."""
    causes, volume_names = _volumes(spec, path)
    containers = _list(spec.get("containers"))
    if not containers:
        causes.append(_fields.required(child(path, "containers")))
    container_names: set[str] = set()
    port_names: set[str] = set()
    for containers_key in ("initContainers", "containers"):
        for container_path, container in _items(spec, containers_key, path):
            name = container.get("name")
            if not name:
                causes.append(_fields.required(child(container_path, "name")))
            else:
                causes += _unique_name(child(container_path, "name"), name, container_names, _fields.dns1123_label)
            causes += _container(container, container_path, volume_names, port_names)
    supported = allowed_restart_policies or ("Always", "OnFailure", "Never")
    restart_policy = spec.get("restartPolicy")
    if restart_policy and restart_policy not in supported:
        causes.append(_fields.not_supported(child(path, "restartPolicy"), restart_policy, supported))
    dns_policy = spec.get("dnsPolicy")
    dns_policies = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
    if dns_policy and dns_policy not in dns_policies:
        causes.append(_fields.not_supported(child(path, "dnsPolicy"), dns_policy, dns_policies))
    causes += _non_negative(spec, path, ("terminationGracePeriodSeconds",))
    return causes


def _pod(pod: JsonObject, old: JsonObject | None) -> list[Cause]:
    causes = pod_spec(_dict(pod.get("spec")), "spec")
    if old is not None and _mutable_pod_spec(pod.get("spec")) != _mutable_pod_spec(old.get("spec")):
        causes.append(_fields.forbidden("spec", _POD_UPDATE_ERROR))
    return causes


def _mutable_pod_spec(spec: Any) -> JsonObject:
    """The pod spec with the fields an update may change blanked out, for comparing old and new."""
    comparable = dict(_dict(spec))
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        comparable.pop(key, None)
    for containers_key in ("initContainers", "containers"):
        comparable[containers_key] = [
            {k: v for k, v in _dict(container).items() if k != "image"}
            for container in _list(_dict(spec).get(containers_key))
        ]
    return comparable


# Label selectors and workloads.


def label_selector(selector: JsonObject, path: str) -> list[Cause]:
    causes = _fields.labels(child(path, "matchLabels"), selector.get("matchLabels"))
    for expression_path, expression in _items(selector, "matchExpressions", path):
        causes += _fields.qualified_name(child(expression_path, "key"), str(expression.get("key", "")))
        operator = expression.get("operator")
        values = _list(expression.get("values"))
        if operator in ("In", "NotIn"):
            if not values:
                causes.append(
                    _fields.required(
                        child(expression_path, "values"), "must be specified when `operator` is 'In' or 'NotIn'"
                    )
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                causes.append(
                    _fields.forbidden(
                        child(expression_path, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            causes.append(
                _fields.not_supported(
                    child(expression_path, "operator"), operator, ("In", "NotIn", "Exists", "DoesNotExist")
                )
            )
    return causes


def selector_matches(selector: JsonObject, labels: JsonObject) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects `labels`."""
    if any(labels.get(key) != value for key, value in _dict(selector.get("matchLabels")).items()):
        return False
    for expression in _list(selector.get("matchExpressions")):
        expression = _dict(expression)
        key, operator = str(expression.get("key")), str(expression.get("operator"))
        values = _list(expression.get("values"))
        present = key in labels
        matched = {
            "In": present and labels[key] in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(operator, False)
        if not matched:
            return False
    return True


def _replicated(
    obj: JsonObject, old: JsonObject | None, kind: str, restart_policies: tuple[str, ...] = ("Always",)
) -> list[Cause]:
    """What Deployments, ReplicaSets, StatefulSets and Jobs share: replicas, selector, template and its labels."""
    spec = _dict(obj.get("spec"))
    causes = _non_negative(spec, "spec", ("replicas", "minReadySeconds"))
    selector = spec.get("selector")
    template = _dict(spec.get("template"))
    template_labels = _dict(_dict(template.get("metadata")).get("labels"))
    if not isinstance(selector, dict):
        causes.append(_fields.required("spec.selector"))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        causes.append(_fields.invalid("spec.selector", selector, f"empty selector is invalid for {kind}"))
    else:
        causes += label_selector(selector, "spec.selector")
        if not selector_matches(selector, template_labels):
            causes.append(
                _fields.invalid(
                    "spec.template.metadata.labels", template_labels, "`selector` does not match template `labels`"
                )
            )
    causes += _fields.labels("spec.template.metadata.labels", template_labels)
    if spec.get("template") is None:
        causes.append(_fields.required("spec.template"))
    else:
        causes += pod_spec(_dict(template.get("spec")), "spec.template.spec", allowed_restart_policies=restart_policies)
    if old is not None:
        old_selector = _dict(old.get("spec")).get("selector")
        if old_selector is not None and selector != old_selector:
            causes.append(_fields.immutable("spec.selector", selector))
    return causes


def _deployment(deployment: JsonObject, old: JsonObject | None) -> list[Cause]:
    causes = _replicated(deployment, old, "deployment")
    spec = _dict(deployment.get("spec"))
    causes += _non_negative(spec, "spec", ("revisionHistoryLimit", "progressDeadlineSeconds"))
    deadline, min_ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
    if isinstance(deadline, int) and isinstance(min_ready, int) and deadline <= min_ready:
        causes.append(_fields.invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    causes += _strategy(_dict(spec.get("strategy")))
    return causes


def _strategy(strategy: JsonObject) -> list[Cause]:
    causes: list[Cause] = []
    strategy_type = strategy.get("type")
    rolling_update = strategy.get("rollingUpdate")
    if strategy_type == "Recreate":
        if rolling_update is not None:
            causes.append(
                _fields.forbidden(
                    "spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"
                )
            )
    elif strategy_type in (None, "RollingUpdate"):
        rolling_update = _dict(rolling_update)
        amounts = {}
        for key in ("maxUnavailable", "maxSurge"):
            path = child("spec.strategy.rollingUpdate", key)
            value = rolling_update.get(key)
            causes += _int_or_percent(path, value)
            amounts[key] = value
        if _is_zero(amounts["maxUnavailable"]) and _is_zero(amounts["maxSurge"]):
            causes.append(
                _fields.invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    amounts["maxUnavailable"],
                    "may not be 0 when `maxSurge` is 0",
                )
            )
    else:
        causes.append(_fields.not_supported("spec.strategy.type", strategy_type, ("Recreate", "RollingUpdate")))
    return causes


def _int_or_percent(path: str, value: Any) -> list[Cause]:
    if isinstance(value, int) and value < 0:
        return [_fields.invalid(path, value, "must be greater than or equal to 0")]
    if isinstance(value, str):
        if not _PERCENT.fullmatch(value):
            return [_fields.invalid(path, value, _PERCENT_ERROR)]
        if int(value[:-1]) > 100:
            return [_fields.invalid(path, value, "must not be greater than 100%")]
    return []


def _is_zero(value: Any) -> bool:
    return value in (0, "0%")


def _replica_set(replica_set: JsonObject, old: JsonObject | None) -> list[Cause]:
    return _replicated(replica_set, old, "replicaset")


def _stateful_set(stateful_set: JsonObject, old: JsonObject | None) -> list[Cause]:
    spec = _dict(stateful_set.get("spec"))
    # The claim templates are volumes of every pod, so mounts may name them (as upstream validates).
    claim_volumes = [
        {"name": name, "persistentVolumeClaim": {"claimName": name}}
        for claim in _list(spec.get("volumeClaimTemplates"))
        if isinstance(name := _dict(_dict(claim).get("metadata")).get("name"), str)
    ]
    template_spec = _dict(_dict(spec.get("template")).get("spec"))
    with_claims = {
        **stateful_set,
        "spec": {
            **spec,
            "template": {
                **_dict(spec.get("template")),
                "spec": {**template_spec, "volumes": [*_list(template_spec.get("volumes")), *claim_volumes]},
            },
        },
    }
    causes = _replicated(
        with_claims if claim_volumes and spec.get("template") is not None else stateful_set, old, "statefulset"
    )
    if spec.get("podManagementPolicy") not in (None, "OrderedReady", "Parallel"):
        causes.append(
            _fields.not_supported(
                "spec.podManagementPolicy", spec.get("podManagementPolicy"), ["OrderedReady", "Parallel"]
            )
        )
    for position, claim in enumerate(_list(spec.get("volumeClaimTemplates"))):
        if not _dict(_dict(claim).get("metadata")).get("name"):
            causes.append(_fields.required(f"{index('spec.volumeClaimTemplates', position)}.metadata.name"))
    if old is not None:
        for field_name in ("serviceName", "volumeClaimTemplates", "podManagementPolicy"):
            if spec.get(field_name) != _dict(old.get("spec")).get(field_name):
                causes.append(
                    _fields.forbidden(
                        "spec",
                        "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                        "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
                        "'minReadySeconds' are forbidden",
                    )
                )
                break
    return causes


def _job(job: JsonObject, old: JsonObject | None) -> list[Cause]:
    causes = [
        cause
        for cause in _replicated(job, old, "job", restart_policies=("OnFailure", "Never"))
        if cause.field != "spec.replicas"
    ]
    spec = _dict(job.get("spec"))
    causes += _non_negative(
        spec, "spec", ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished")
    )
    if spec.get("completionMode") not in (None, "NonIndexed", "Indexed"):
        causes.append(
            _fields.not_supported("spec.completionMode", spec.get("completionMode"), ["NonIndexed", "Indexed"])
        )
    if spec.get("completionMode") == "Indexed":
        causes.append(
            _fields.not_supported("spec.completionMode", "Indexed", ["NonIndexed (localcluster runs no Indexed Jobs)"])
        )
    if old is not None and _dict(old.get("spec")).get("template") != spec.get("template") and not spec.get("suspend"):
        causes.append(_fields.invalid("spec.template", "", "field is immutable"))
    return causes


# Services.


def _service(service: JsonObject, old: JsonObject | None) -> list[Cause]:
    spec = _dict(service.get("spec"))
    causes: list[Cause] = []
    service_types = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
    service_type = spec.get("type") or "ClusterIP"
    if service_type not in service_types:
        causes.append(_fields.not_supported("spec.type", service_type, service_types))
    ports = _list(spec.get("ports"))
    if service_type == "ExternalName":
        if not spec.get("externalName"):
            causes.append(_fields.required("spec.externalName"))
    elif not ports and spec.get("clusterIP") != "None":
        causes.append(_fields.required("spec.ports"))
    names: set[str] = set()
    for port_path, port in _items(spec, "ports", "spec"):
        name = port.get("name")
        if not name:
            if len(ports) > 1:
                causes.append(_fields.required(child(port_path, "name")))
        else:
            causes += _unique_name(child(port_path, "name"), name, names, _fields.dns1123_label)
        if port.get("port") is not None:  # a missing port is the schema's Required value
            causes += _fields.port_number(child(port_path, "port"), port["port"])
        protocol = port.get("protocol")
        if protocol and protocol not in _PROTOCOLS:
            causes.append(_fields.not_supported(child(port_path, "protocol"), protocol, _PROTOCOLS))
        target_port = port.get("targetPort")
        if target_port is not None:
            causes += _fields.port_number_or_name(child(port_path, "targetPort"), target_port)
        if port.get("nodePort") and service_type not in ("NodePort", "LoadBalancer"):
            causes.append(
                _fields.forbidden(child(port_path, "nodePort"), f"may not be used when `type` is '{service_type}'")
            )
    affinity = spec.get("sessionAffinity")
    if affinity and affinity not in ("ClientIP", "None"):
        causes.append(_fields.not_supported("spec.sessionAffinity", affinity, ("ClientIP", "None")))
    causes += _fields.labels("spec.selector", spec.get("selector"))
    if old is not None:
        old_cluster_ip = _dict(old.get("spec")).get("clusterIP")
        cluster_ip = spec.get("clusterIP")
        if old_cluster_ip and cluster_ip and cluster_ip != old_cluster_ip and service_type != "ExternalName":
            causes.append(_fields.immutable("spec.clusterIP", cluster_ip))
    return causes


# ConfigMaps and Secrets.


def _config_data(obj: JsonObject, old: JsonObject | None, *, base64_data: bool) -> list[Cause]:
    causes: list[Cause] = []
    data, binary_data = _dict(obj.get("data")), _dict(obj.get("binaryData"))
    total = 0
    for field_name, values in (("data", data), ("binaryData", binary_data)):
        for data_key, value in values.items():
            key_path = _fields.key(field_name, data_key)
            causes += _fields.config_key(key_path, data_key)
            if field_name == "data" and data_key in binary_data:
                causes.append(_fields.invalid(key_path, data_key, "duplicate of key present in binaryData"))
            if base64_data or field_name == "binaryData":
                try:
                    total += len(base64.b64decode(value, validate=True))
                except (binascii.Error, ValueError, TypeError):
                    causes.append(_fields.invalid(key_path, "<value omitted>", "illegal base64 data"))
            else:
                total += len(value.encode()) if isinstance(value, str) else 0
    if total > MAX_CONFIG_BYTES:
        causes.append(_fields.too_long("data", MAX_CONFIG_BYTES))
    if old is not None and old.get("immutable") is True:
        for field_name in ("data", "binaryData"):
            if obj.get(field_name) != old.get(field_name):
                causes.append(_fields.forbidden(field_name, "field is immutable when `immutable` is set"))
        if obj.get("immutable") is not True:
            causes.append(_fields.forbidden("immutable", "field is immutable when `immutable` is set"))
    return causes


def _config_map(config_map: JsonObject, old: JsonObject | None) -> list[Cause]:
    return _config_data(config_map, old, base64_data=False)


def _secret(secret: JsonObject, old: JsonObject | None) -> list[Cause]:
    causes = _config_data(secret, old, base64_data=True)
    if old is not None and old.get("type") and secret.get("type") != old.get("type"):
        causes.append(_fields.immutable("type", secret.get("type")))
    return causes


RULES: dict[tuple[str, str], Rule] = {
    ("", "Pod"): _pod,
    ("", "Service"): _service,
    ("", "ConfigMap"): _config_map,
    ("", "Secret"): _secret,
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replica_set,
    ("apps", "StatefulSet"): _stateful_set,
    ("batch", "Job"): _job,
}
