"""Server-side Table output (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`).

`kubectl get` prints whatever columns the server sends; these are upstream's printers for the
built-in kinds (pkg/printers/internalversion) and a CRD's additionalPrinterColumns for custom kinds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from localcluster.api.resources import ResourceType

Obj = dict[str, Any]
Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority (1 = wide), cell


def human_duration(seconds: float) -> str:
    """The age format of k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d" if hours % 24 == 0 else f"{days}d{hours % 24}h"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if days < 365 * 8:
        return f"{years}y" if days % 365 == 0 else f"{years}y{days % 365}d"
    return f"{years}y"


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _get(obj: Any, *path: str | int) -> Any:
    for part in path:
        if isinstance(part, int):
            obj = obj[part] if isinstance(obj, list) and len(obj) > part else None
        else:
            obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _name(obj: Obj) -> str:
    return obj["metadata"]["name"]


def _age(obj: Obj) -> str:
    return age(obj["metadata"].get("creationTimestamp"))


def _pod_ready(pod: Obj) -> str:
    statuses = _get(pod, "status", "containerStatuses") or []
    total = len(_get(pod, "spec", "containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(pod: Obj) -> str:
    """The STATUS column: the most telling container reason, as kubectl shows it."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    init_statuses = status.get("initContainerStatuses") or []
    init_total = len(_get(pod, "spec", "initContainers") or [])
    for index, init in enumerate(init_statuses):
        state = init.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated and terminated.get("exitCode") == 0:
            continue
        if terminated:
            reason = f"Init:{terminated.get('reason') or 'ExitCode:' + str(terminated.get('exitCode'))}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = f"Init:{waiting['reason']}"
        else:
            reason = f"Init:{index}/{init_total}"
        break
    else:
        for container in reversed(status.get("containerStatuses") or []):
            state = container.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif (state.get("terminated") or {}).get("reason"):
                reason = state["terminated"]["reason"]
            elif state.get("terminated"):
                terminated = state["terminated"]
                reason = (
                    f"Signal:{terminated['signal']}"
                    if terminated.get("signal")
                    else f"ExitCode:{terminated.get('exitCode')}"
                )
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _restarts(pod: Obj) -> str:
    return str(sum(s.get("restartCount", 0) for s in _get(pod, "status", "containerStatuses") or []))


def _service_ports(service: Obj) -> str:
    ports = _get(service, "spec", "ports") or []
    if not ports:
        return "<none>"
    return ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
        for p in ports
    )


def _selector(selector: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items())) or "<none>"


def _label_selector(selector: Obj | None) -> str:
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        terms.append(f"{expression['key']} {expression['operator'].lower()} ({','.join(expression.get('values', []))})")
    return ",".join(terms) or "<none>"


def _endpoints(endpoints: Obj) -> str:
    found = [
        f"{address.get('ip')}:{port.get('port')}"
        for subset in endpoints.get("subsets") or []
        for address in subset.get("addresses") or []
        for port in subset.get("ports") or [{"port": ""}]
    ]
    if not found:
        return "<none>"
    shown = ",".join(found[:3])
    return shown + (f" + {len(found) - 3} more..." if len(found) > 3 else "")


def _containers(template_spec: Obj | None, field: str) -> str:
    return ",".join(str(c.get(field, "")) for c in (template_spec or {}).get("containers") or [])


def _ready_of_desired(workload: Obj) -> str:
    return f"{_get(workload, 'status', 'readyReplicas') or 0}/{_get(workload, 'spec', 'replicas')}"


def _workload_columns(kind: str) -> list[Column]:
    wide: list[Column] = [
        ("Containers", "string", 1, lambda o: _containers(_get(o, "spec", "template", "spec"), "name")),
        ("Images", "string", 1, lambda o: _containers(_get(o, "spec", "template", "spec"), "image")),
        ("Selector", "string", 1, lambda o: _label_selector(_get(o, "spec", "selector"))),
    ]
    if kind == "Deployment":
        return [
            (
                "Ready",
                "string",
                0,
                lambda o: f"{_get(o, 'status', 'readyReplicas') or 0}/{_get(o, 'spec', 'replicas')}",
            ),
            ("Up-to-date", "integer", 0, lambda o: _get(o, "status", "updatedReplicas") or 0),
            ("Available", "integer", 0, lambda o: _get(o, "status", "availableReplicas") or 0),
            ("Age", "string", 0, _age),
            *wide,
        ]
    return [
        ("Desired", "integer", 0, lambda o: _get(o, "spec", "replicas") or 0),
        ("Current", "integer", 0, lambda o: _get(o, "status", "replicas") or 0),
        ("Ready", "integer", 0, lambda o: _get(o, "status", "readyReplicas") or 0),
        ("Age", "string", 0, _age),
        *wide,
    ]


def _job_status(job: Obj) -> str:
    """As the Job printer: the first of these conditions that holds, else Running."""
    holding = {c.get("type") for c in _get(job, "status", "conditions") or [] if c.get("status") == "True"}
    for condition in ("Complete", "Failed"):
        if condition in holding:
            return condition
    if job["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for condition in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if condition in holding:
            return condition
    return "Running"


def _job_completions(job: Obj) -> str:
    succeeded = _get(job, "status", "succeeded") or 0
    completions = _get(job, "spec", "completions")
    if completions is None:
        return f"{succeeded}/1 of {_get(job, 'spec', 'parallelism') or 1}"
    return f"{succeeded}/{completions}"


def _job_duration(job: Obj) -> str:
    started = _get(job, "status", "startTime")
    if not started:
        return ""
    finished = _get(job, "status", "completionTime")
    end = datetime.strptime(finished, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if finished else datetime.now(UTC)
    begin = datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((end - begin).total_seconds())


def _event_object(event: Obj) -> str:
    involved = event.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _service_external_ip(service: Obj) -> str:
    """getServiceExternalIP: external IPs, a load balancer's ingress (`<pending>` until one is there)."""
    external = list(_get(service, "spec", "externalIPs") or [])
    service_type = _get(service, "spec", "type") or "ClusterIP"
    if service_type == "ExternalName":
        return str(_get(service, "spec", "externalName") or "")
    if service_type != "LoadBalancer":
        return ",".join(external) or "<none>"
    ingress = _get(service, "status", "loadBalancer", "ingress") or []
    balanced = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
    return ",".join(balanced + external) or "<pending>"


def _node_status(node: Obj) -> str:
    """printNode's Status: Ready/NotReady/Unknown, then SchedulingDisabled when cordoned."""
    ready = next((c for c in _get(node, "status", "conditions") or [] if c.get("type") == "Ready"), None)
    states = ["Unknown" if ready is None else "Ready" if ready.get("status") == "True" else "NotReady"]
    if _get(node, "spec", "unschedulable"):
        states.append("SchedulingDisabled")
    return ",".join(states)


def _node_roles(node: Obj) -> str:
    labels = node["metadata"].get("labels") or {}
    roles = sorted(
        {key.removeprefix("node-role.kubernetes.io/") for key in labels if key.startswith("node-role.kubernetes.io/")}
        | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set())
    )
    return ",".join(role for role in roles if role) or "<none>"


def _node_address(node: Obj, kind: str) -> str:
    found = [a.get("address", "") for a in _get(node, "status", "addresses") or [] if a.get("type") == kind]
    return found[0] if found else "<none>"


BUILTIN_COLUMNS: dict[str, list[Column]] = {
    "Node": [
        ("Status", "string", 0, _node_status),
        ("Roles", "string", 0, _node_roles),
        ("Age", "string", 0, _age),
        ("Version", "string", 0, lambda o: _get(o, "status", "nodeInfo", "kubeletVersion") or ""),
        ("Internal-IP", "string", 1, lambda o: _node_address(o, "InternalIP")),
        ("External-IP", "string", 1, lambda o: _node_address(o, "ExternalIP")),
        ("OS-Image", "string", 1, lambda o: _get(o, "status", "nodeInfo", "osImage") or "<unknown>"),
        ("Kernel-Version", "string", 1, lambda o: _get(o, "status", "nodeInfo", "kernelVersion") or "<unknown>"),
        (
            "Container-Runtime",
            "string",
            1,
            lambda o: _get(o, "status", "nodeInfo", "containerRuntimeVersion") or "<unknown>",
        ),
    ],
    "Lease": [("Holder", "string", 0, lambda o: _get(o, "spec", "holderIdentity") or ""), ("Age", "string", 0, _age)],
    "CustomResourceDefinition": [("Created At", "date", 0, lambda o: o["metadata"].get("creationTimestamp", ""))],
    "Namespace": [("Status", "string", 0, lambda o: _get(o, "status", "phase") or ""), ("Age", "string", 0, _age)],
    "Pod": [
        ("Ready", "string", 0, _pod_ready),
        ("Status", "string", 0, _pod_status),
        ("Restarts", "string", 0, _restarts),
        ("Age", "string", 0, _age),
        ("IP", "string", 1, lambda o: _get(o, "status", "podIP") or "<none>"),
        ("Node", "string", 1, lambda o: _get(o, "spec", "nodeName") or "<none>"),
        ("Nominated Node", "string", 1, lambda o: _get(o, "status", "nominatedNodeName") or "<none>"),
        ("Readiness Gates", "string", 1, lambda o: "<none>"),
    ],
    "Service": [
        ("Type", "string", 0, lambda o: _get(o, "spec", "type") or "ClusterIP"),
        ("Cluster-IP", "string", 0, lambda o: _get(o, "spec", "clusterIP") or "<none>"),
        ("External-IP", "string", 0, _service_external_ip),
        ("Port(s)", "string", 0, _service_ports),
        ("Age", "string", 0, _age),
        ("Selector", "string", 1, lambda o: _selector(_get(o, "spec", "selector"))),
    ],
    "Endpoints": [("Endpoints", "string", 0, _endpoints), ("Age", "string", 0, _age)],
    "ConfigMap": [
        ("Data", "integer", 0, lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
        ("Age", "string", 0, _age),
    ],
    "Secret": [
        ("Type", "string", 0, lambda o: o.get("type", "Opaque")),
        ("Data", "integer", 0, lambda o: len(o.get("data") or {})),
        ("Age", "string", 0, _age),
    ],
    "ServiceAccount": [("Secrets", "integer", 0, lambda o: len(o.get("secrets") or [])), ("Age", "string", 0, _age)],
    "PersistentVolumeClaim": [
        ("Status", "string", 0, lambda o: _get(o, "status", "phase") or "Pending"),
        ("Volume", "string", 0, lambda o: _get(o, "spec", "volumeName") or ""),
        ("Capacity", "string", 0, lambda o: (_get(o, "status", "capacity") or {}).get("storage", "")),
        ("Access Modes", "string", 0, lambda o: ",".join(_get(o, "status", "accessModes") or [])),
        ("StorageClass", "string", 0, lambda o: _get(o, "spec", "storageClassName") or "<unset>"),
        ("VolumeAttributesClass", "string", 0, lambda o: "<unset>"),
        ("Age", "string", 0, _age),
    ],
    "Deployment": _workload_columns("Deployment"),
    "ReplicaSet": _workload_columns("ReplicaSet"),
    "StatefulSet": [
        ("Ready", "string", 0, _ready_of_desired),
        ("Age", "string", 0, _age),
        ("Containers", "string", 1, lambda o: _containers(_get(o, "spec", "template", "spec"), "name")),
        ("Images", "string", 1, lambda o: _containers(_get(o, "spec", "template", "spec"), "image")),
    ],
    "Job": [
        ("Status", "string", 0, _job_status),
        ("Completions", "string", 0, _job_completions),
        ("Duration", "string", 0, _job_duration),
        ("Age", "string", 0, _age),
        ("Containers", "string", 1, lambda o: _containers(_get(o, "spec", "template", "spec"), "name")),
        ("Images", "string", 1, lambda o: _containers(_get(o, "spec", "template", "spec"), "image")),
        ("Selector", "string", 1, lambda o: _label_selector(_get(o, "spec", "selector"))),
    ],
    "EndpointSlice": [
        ("AddressType", "string", 0, lambda o: o.get("addressType", "")),
        ("Ports", "string", 0, lambda o: ",".join(str(p.get("port")) for p in o.get("ports") or []) or "<unset>"),
        (
            "Endpoints",
            "string",
            0,
            lambda o: ",".join(a for e in o.get("endpoints") or [] for a in e.get("addresses", [])) or "<unset>",
        ),
        ("Age", "string", 0, _age),
    ],
    "Event": [
        ("Last Seen", "string", 0, lambda o: age(o.get("lastTimestamp") or o["metadata"].get("creationTimestamp"))),
        ("Type", "string", 0, lambda o: o.get("type", "")),
        ("Reason", "string", 0, lambda o: o.get("reason", "")),
        ("Object", "string", 0, _event_object),
        ("Message", "string", 0, lambda o: o.get("message", "")),
    ],
    "Role": [("Created At", "string", 0, lambda o: o["metadata"].get("creationTimestamp", ""))],
    "ClusterRole": [("Created At", "string", 0, lambda o: o["metadata"].get("creationTimestamp", ""))],
    "RoleBinding": [
        ("Role", "string", 0, lambda o: f"{_get(o, 'roleRef', 'kind')}/{_get(o, 'roleRef', 'name')}"),
        ("Age", "string", 0, _age),
    ],
    "ClusterRoleBinding": [
        ("Role", "string", 0, lambda o: f"{_get(o, 'roleRef', 'kind')}/{_get(o, 'roleRef', 'name')}"),
        ("Age", "string", 0, _age),
    ],
}

_JSONPATH_STEP = re.compile(
    r"\.([A-Za-z0-9_-]+)|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]|\[(\d+|\*)\]"
    r"|\[['\"]((?:[^'\"\\]|\\.)*)['\"]\]"
)


def jsonpath(obj: Any, expression: str) -> list[Any]:
    """The subset of JSONPath CRD printer columns use: `.a.b`, `[0]`, `[*]`, `[?(@.type=='Ready')]`, and
    `['serving\\.knative\\.dev/revision']` (a quoted key, dots escaped)."""
    results = [obj]
    position = 0
    expression = expression.strip()
    if expression.startswith("{") and expression.endswith("}"):
        expression = expression[1:-1]
    while position < len(expression):
        match = _JSONPATH_STEP.match(expression, position)
        if not match:
            return []
        position = match.end()
        field, filter_key, filter_value, index, quoted = match.groups()
        if quoted is not None:
            field = quoted.replace("\\", "")
        next_results: list[Any] = []
        for node in results:
            if field is not None:
                if isinstance(node, dict) and field in node:
                    next_results.append(node[field])
            elif filter_key is not None:
                for item in node if isinstance(node, list) else []:
                    if str(_get(item, *filter_key.split("."))) == filter_value:
                        next_results.append(item)
            elif index == "*":
                next_results.extend(node if isinstance(node, list) else (node or {}).values())
            elif isinstance(node, list) and int(index) < len(node):
                next_results.append(node[int(index)])
        results = next_results
    return results


def _printer_column(column: dict[str, Any]) -> Column:
    def cell(obj: Obj) -> Any:
        values = jsonpath(obj, column["jsonPath"])
        if not values:
            return None
        value = values[0]
        if column.get("type") == "date" and isinstance(value, str):
            return age(value)
        if isinstance(value, (dict, list)):
            return json.dumps(value, separators=(",", ":"))
        return value

    kind = column.get("type", "string")
    return column["name"], "string" if kind == "date" else kind, int(column.get("priority", 0)), cell


def columns_for(resource_type: ResourceType) -> list[Column]:
    if resource_type.is_custom:
        columns = [_printer_column(c) for c in resource_type.printer_columns]
        if not any(c[0] == "Age" for c in columns):
            columns.append(("Age", "string", 0, _age))
        return columns
    return BUILTIN_COLUMNS.get(resource_type.kind, [("Age", "string", 0, _age)])


def to_table(
    resource_type: ResourceType,
    objects: list[Obj],
    *,
    list_metadata: dict[str, Any] | None = None,
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table; rows carry PartialObjectMetadata unless `includeObject` says otherwise."""
    columns = [("Name", "string", 0, _name), *columns_for(resource_type)]
    definitions = [
        {
            "name": name,
            "type": kind,
            "format": "name" if name == "Name" else "",
            "description": f"{name} of the {resource_type.kind}",
            "priority": priority,
        }
        for name, kind, priority, _cell in columns
    ]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [cell(obj) for _name_, _kind, _priority, cell in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object == "Metadata":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata or {},
        "columnDefinitions": definitions,
        "rows": rows,
    }
