"""Why `http://<service>` does not reach the app: the Service's port, selector, endpoints and target port.

The questions follow a request: does the Service exist and expose the port callers use; does its
selector match pods; are those pods Ready (else: why not, as for a workload); does the endpoint
list them on the target port; does the app answer there.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import httpx
from kubernetes.client import V1Pod, V1Service
from kubernetes.client.exceptions import ApiException

from checkers._context import Context
from checkers.diagnosis._fields import meta, name_of, pod_spec, service_spec
from checkers.diagnosis._model import Diagnosis, Outlook, Problem
from checkers.diagnosis._pods import (
    _not_found,
    answer_of,
    diagnose_pod,
    diagnose_workload,
    namespace_events,
    pods_matching,
    proxy_reason,
)

#: What localcluster's service proxy answers when it cannot deliver (its JSON error's `reason`).
PROXY_REFUSED = ("BackendRefused", "BackendClosed")
PROXY_NOT_YET = ("NoReadyEndpoints",)


def diagnose_service(ctx: Context, name: str, *, port: int = 80, path: str | None = None) -> Diagnosis:
    """Service `name` as callers of `http://name:port` use it; with `path`, READY once the app answers it.

    Without `path` the Service is READY once its endpoints list a Ready pod on the port.
    """
    subject = f"Service {name}"
    try:
        service: V1Service = ctx.core.read_namespaced_service(name, ctx.namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return _not_found("Service", name)
    evidence: dict[str, Any] = {"service": name, **_describe_service(service)}
    url = f"http://{name}" if port == 80 else f"http://{name}:{port}"
    spec = service_spec(service)
    ports = spec.ports or []
    service_port = next((p for p in ports if p.port == port and (p.protocol or "TCP") == "TCP"), None)
    if service_port is None:
        exposed = ", ".join(str(p.port) for p in ports) or "none"
        index = 0 if len(ports) == 1 else None
        fix = (
            f"Expose port {port}: `kubectl patch service {name} --type=json "
            f"-p '{_patch(f'/spec/ports/{index}/port', port)}'`."
            if index is not None
            else f"Add port {port} to the Service's ports."
        )
        return Diagnosis(
            subject,
            Outlook.STUCK,
            Problem.PORT_NOT_EXPOSED,
            f"{subject} exposes port {exposed}, but {url} asks for port {port}, which it does not expose.",
            f"`kubectl get service {name}` (PORT(S)) against the URL the callers use ({url})",
            fix,
            evidence,
        )
    selector = dict(spec.selector or {})
    if not selector:
        return Diagnosis(
            subject,
            Outlook.STUCK,
            Problem.NO_SELECTOR,
            f"{subject} has no selector: it picks no pod, so it has no endpoints.",
            f"`kubectl describe service {name}` (Selector, Endpoints)",
            _selector_fix(ctx, service),
            evidence,
        )
    pods = [pod for pod in pods_matching(ctx, selector) if meta(pod).deletion_timestamp is None]
    wanted = ",".join(f"{key}={value}" for key, value in selector.items())
    if not pods:
        workload = _workload_of(ctx, service, selector)
        if workload is not None:
            return workload.about(
                subject, f"{subject} selects pods with {wanted}, and no pod has those labels: {workload.summary}"
            )
        evidence["pods and their labels"] = _pod_labels(ctx)
        return Diagnosis(
            subject,
            Outlook.STUCK,
            Problem.SELECTOR_MATCHES_NOTHING,
            f"{subject} selects pods with {wanted}, and no pod has those labels.",
            f"`kubectl get pods --show-labels` against `kubectl describe service {name}` (Selector)",
            _selector_fix(ctx, service),
            evidence,
        )
    ready = [pod for pod in pods if _is_ready(pod)]
    if not ready:
        return _pods_not_ready(ctx, subject, pods)
    endpoints = _ready_endpoints(ctx, name, service_port.name or "")
    evidence["endpoints"] = [f"{ip}:{number}" for ip, number in endpoints]
    if not endpoints:
        unknown = _target_port_unknown(service_port, ready[0])
        if unknown:
            return Diagnosis(
                subject,
                Outlook.STUCK,
                Problem.TARGET_PORT_UNKNOWN,
                f"{subject}'s targetPort {service_port.target_port!r} names no port of its pods' containers "
                f"(pod {name_of(ready[0])} has: {unknown}), so its endpoints list no address.",
                f"`kubectl get endpoints {name}` and `kubectl describe service {name}` (TargetPort)",
                _target_port_fix(name, service, ready[0]),
                evidence,
            )
        return Diagnosis(
            subject,
            Outlook.PROGRESSING,
            Problem.ENDPOINTS_PENDING,
            f"{subject} selects Ready pods, but its endpoints do not list them yet.",
            f"`kubectl get endpoints {name}`",
            evidence=evidence,
        )
    if path is None:
        return Diagnosis(subject, Outlook.READY, Problem.NONE, f"{subject} has Ready endpoints.", evidence=evidence)
    return _ask(ctx, subject, service, f"{url}{path}", endpoints, ready[0], evidence)


def _ask(
    ctx: Context,
    subject: str,
    service: V1Service,
    url: str,
    endpoints: list[tuple[str, int]],
    pod: V1Pod,
    evidence: dict[str, Any],
) -> Diagnosis:
    """GET `url` through the Service: the app's own answer (READY), or why the request did not reach it."""
    name = name_of(service)
    look = f"`kubectl logs deployment/{name}` (what the app says) and `kubectl describe service {name}`"
    try:
        response = ctx.http.get(url)
    except httpx.TimeoutException:
        answer, refused = None, False
    except httpx.TransportError:
        answer, refused = None, True
    else:
        answer = answer_of(response.status_code, response.text)
        reason = proxy_reason(answer)
        if reason is None:
            # The app answered. Only a success is ready: an app that says it is not well yet (503 while
            # it recovers) is waited for; one that does not serve the path at all never will.
            evidence["answer"] = f"{answer.status} {answer.text}"
            said = f"{url} answered {answer.status}" + ("." if answer.ok else f": {answer.text}")
            if answer.ok:
                return Diagnosis(subject, Outlook.READY, Problem.NONE, said, evidence=evidence, answer=answer)
            if answer.status in (404, 405):
                not_served = f"{said} (the app behind {subject} does not serve it)"
                return Diagnosis(
                    subject, Outlook.STUCK, Problem.NO_ANSWER, not_served, look, "", evidence, answer=answer
                )
            return Diagnosis(
                subject, Outlook.PROGRESSING, Problem.STARTING, said, look, evidence=evidence, answer=answer
            )
        if reason in PROXY_NOT_YET:
            return Diagnosis(subject, Outlook.PROGRESSING, Problem.ENDPOINTS_PENDING, answer.text, evidence=evidence)
        refused = reason in PROXY_REFUSED
    evidence["answer"] = f"{answer.status} {answer.text}" if answer else "no answer"
    where = ", ".join(f"{ip}:{number}" for ip, number in endpoints)
    if refused:
        return Diagnosis(
            subject,
            Outlook.STUCK,
            Problem.CONNECTION_REFUSED,
            f"{url} reaches {subject}'s endpoints ({where}), but nothing listens there: the targetPort "
            f"{(service_spec(service).ports or [])[0].target_port!r} is not the port the app listens on "
            f"(pod {name_of(pod)}: {_container_ports(pod)}).",
            f"`kubectl get endpoints {name}` (the port) against the pod's ports "
            f"(`kubectl describe pod {name_of(pod)}`)",
            _target_port_fix(name, service, pod),
            evidence,
            answer=answer,
        )
    return Diagnosis(
        subject,
        Outlook.STUCK,
        Problem.NO_ANSWER,
        f"{url} did not answer in time" + (f": {answer.text}" if answer else "."),
        f"`kubectl logs {name_of(pod)}`",
        "",
        evidence,
        answer=answer,
    )


def _pods_not_ready(ctx: Context, subject: str, pods: list[V1Pod]) -> Diagnosis:
    """The Service's pods are not Ready: the cause is theirs, told through their Deployment when there is one."""
    owner = _deployment_of(ctx, pods[0])
    found = diagnose_workload(ctx, owner) if owner else diagnose_pod(ctx, pods[0], namespace_events(ctx))
    return found.about(subject, f"{subject} has no Ready endpoint: {found.summary}")


def _deployment_of(ctx: Context, pod: V1Pod) -> str | None:
    """The Deployment that owns a pod through its ReplicaSet, if any."""
    replica_set = next((o for o in meta(pod).owner_references or [] if o.kind == "ReplicaSet"), None)
    if replica_set is None:
        return None
    try:
        owner = ctx.apps.read_namespaced_replica_set(replica_set.name, ctx.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return next((o.name for o in meta(owner).owner_references or [] if o.kind == "Deployment"), None)


def _ready_endpoints(ctx: Context, name: str, port_name: str) -> list[tuple[str, int]]:
    try:
        endpoints = ctx.core.read_namespaced_endpoints(name, ctx.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise
    found: list[tuple[str, int]] = []
    for subset in endpoints.subsets or []:
        number = next((p.port for p in subset.ports or [] if (p.name or "") == port_name), None)
        if number is not None:
            found.extend((address.ip, number) for address in subset.addresses or [])
    return found


def _target_port_unknown(service_port: Any, pod: V1Pod) -> str | None:
    """The pod's ports, if the Service's named targetPort is not among them (else None)."""
    target = service_port.target_port
    if target is None or isinstance(target, int) or str(target).isdigit():
        return None
    names = [p.name for c in pod_spec(pod).containers for p in c.ports or [] if p.name]
    return None if target in names else (_container_ports(pod) or "no named port")


def _container_ports(pod: V1Pod) -> str:
    return ", ".join(
        f"{p.name}={p.container_port}" if p.name else str(p.container_port)
        for c in pod_spec(pod).containers
        for p in c.ports or []
    )


def _target_port_fix(name: str, service: V1Service, pod: V1Pod) -> str:
    """Point the Service at the port the pod's readiness probe uses: the app answers there."""
    if len(service_spec(service).ports or []) != 1:
        return ""
    probe = next((c.readiness_probe for c in pod_spec(pod).containers if c.readiness_probe), None)
    port = probe.http_get.port if probe is not None and probe.http_get is not None else None
    if port is None:
        first = next((p for c in pod_spec(pod).containers for p in c.ports or []), None)
        port = (first.name or first.container_port) if first else None
    if port is None:
        return ""
    return (
        f"Send the traffic to the port the app listens on ({port}): "
        f"`kubectl patch service {name} --type=json -p '{_patch('/spec/ports/0/targetPort', port)}'`."
    )


def _workload_of(ctx: Context, service: V1Service, selector: dict[str, str]) -> Diagnosis | None:
    """Why the Deployment meant to run a Service's pods runs none, when that (not the selector) is the cause.

    The Deployment whose pod template carries the selector's labels, or else the one named after the
    Service's `app` label if there is none (a deleted Deployment leaves its Service selecting nothing).
    None when a Deployment by that name exists with other labels: then the selector is what is wrong.
    """
    deployments = ctx.apps.list_namespaced_deployment(ctx.namespace).items
    for deployment in deployments:
        labels = (meta(deployment.spec.template).labels or {}) if deployment.spec else {}
        if selector.items() <= labels.items():
            found = diagnose_workload(ctx, name_of(deployment))
            return None if found.ready else found
    app = (meta(service).labels or {}).get("app") or name_of(service)
    if any(name_of(deployment) == app for deployment in deployments):
        return None
    return diagnose_workload(ctx, app)


def _selector_fix(ctx: Context, service: V1Service) -> str:
    """Select the pods whose `app` label is the Service's own `app` label (or its name), if there are some."""
    name = name_of(service)
    app = (meta(service).labels or {}).get("app") or name
    if not pods_matching(ctx, {"app": app}):
        return f"Make spec.selector match the labels of the pods {name} should reach (`kubectl get pods -L app`)."
    return f"Select the {app} pods by their app label: `kubectl set selector service {name} app={shlex.quote(app)}`."


def _pod_labels(ctx: Context) -> list[str]:
    return [
        f"{name_of(pod)}: " + ",".join(f"{k}={v}" for k, v in (meta(pod).labels or {}).items())
        for pod in ctx.core.list_namespaced_pod(ctx.namespace).items
    ]


def _describe_service(service: V1Service) -> dict[str, Any]:
    spec = service_spec(service)
    return {
        "selector": dict(spec.selector or {}),
        "ports": [f"{p.name or '-'} {p.port}→{p.target_port}" for p in spec.ports or []],
    }


def _is_ready(pod: V1Pod) -> bool:
    conditions = (pod.status.conditions or []) if pod.status else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _patch(path: str, value: Any) -> str:
    return json.dumps([{"op": "replace", "path": path, "value": value}], separators=(",", ":"))
