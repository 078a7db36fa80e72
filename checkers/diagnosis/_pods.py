"""Why a Deployment has no Ready pod, read from what `kubectl describe` shows of its newest pods.

The order of the questions is the order in which a pod comes to life: scheduled (claims exist),
volumes mounted (ConfigMaps and Secrets exist), image pulled, container configured, container
running without exiting, readiness probe passing. The first question answered "no" is the cause.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from kubernetes.client import CoreV1Event, V1ContainerStatus, V1Deployment, V1Pod, V1ReplicaSet
from kubernetes.client.exceptions import ApiException

from checkers._context import Context
from checkers.diagnosis._fields import meta, name_of, pod_spec, uid_of
from checkers.diagnosis._model import Answer, Diagnosis, Outlook, Problem
from labkit._text import message_text
from labkit.kustomize import base_manifest
from labkit.settings import PROJECT_IMAGE

#: Waiting reasons of a container whose image cannot be had.
IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
#: Waiting reasons of a container that cannot be configured (a missing ConfigMap, Secret or key).
CONFIG_REASONS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")
#: Log lines shown of a container that exits.
LOG_LINES = 5
#: Seconds after a probe's last chance (initialDelay + period × failureThreshold) before calling it hopeless.
PROBE_SLACK = 2.0
#: Failing HTTP answers that will not change by themselves: the probe asks the wrong path or port.
HOPELESS_PROBE_STATUSES = re.compile(r"statuscode: (400|401|403|404|405)\b")
#: Statuses with which localcluster's service proxy answers for a backend it could not reach.
PROXY_STATUSES = (502, 503, 504)
_MISSING = re.compile(r'(persistentvolumeclaim|configmap|secret) "([^"]+)" not found', re.IGNORECASE)
_MISSING_KEY = re.compile(r"couldn't find key (\S+) in (ConfigMap|Secret) ([^/\s]+)/(\S+)")
_KINDS = {"persistentvolumeclaim": "PersistentVolumeClaim", "configmap": "ConfigMap", "secret": "Secret"}


def diagnose_workload(ctx: Context, name: str) -> Diagnosis:
    """Deployment `name`: READY once a pod of its newest ReplicaSet is Ready, else why not (one look)."""
    subject = f"Deployment {name}"
    try:
        deployment: V1Deployment = ctx.apps.read_namespaced_deployment(name, ctx.namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return _not_found("Deployment", name)
    if deployment.spec.replicas == 0:
        return Diagnosis(
            subject,
            Outlook.STUCK,
            Problem.SCALED_TO_ZERO,
            f"{subject} is scaled to 0 replicas: it runs no pod.",
            look=f"`kubectl get deployment {name}` (READY 0/0)",
            fix=f"Scale it back up: `kubectl scale deployment {name} --replicas=1`.",
        )
    observed = deployment.status.observed_generation if deployment.status else None
    if observed is not None and (meta(deployment).generation or 0) > observed:
        return Diagnosis(subject, Outlook.PROGRESSING, Problem.STARTING, f"{subject} is rolling out its change.")
    events = namespace_events(ctx)
    newest = _newest_replica_set(ctx, deployment)
    if newest is None:
        return Diagnosis(subject, Outlook.PROGRESSING, Problem.STARTING, f"{subject} has no ReplicaSet yet.")
    pods = [
        pod
        for pod in pods_matching(ctx, deployment.spec.selector.match_labels or {})
        if _owned_by(pod, uid_of(newest)) and meta(pod).deletion_timestamp is None
    ]
    if not pods:
        refused = latest_event(events, uid_of(newest), "FailedCreate")
        if refused is not None:
            return Diagnosis(
                subject,
                Outlook.STUCK,
                Problem.FAILED_CREATE,
                f"{subject} cannot create its pod: {refused.message}",
                look=f"`kubectl describe replicaset {name_of(newest)}` (Events)",
                fix=reapply_fix(name),
            )
        return Diagnosis(subject, Outlook.PROGRESSING, Problem.STARTING, f"{subject} has not created its pod yet.")
    diagnoses = [diagnose_pod(ctx, pod, events, workload=name) for pod in pods]
    ready = next((found for found in diagnoses if found.ready), None)
    if ready is not None:
        return ready.about(subject, f"{subject} has a Ready pod: {ready.summary}")
    worst = next((found for found in diagnoses if found.outlook is Outlook.STUCK), diagnoses[0])
    return worst.about(subject, f"{subject} has no Ready pod: {worst.summary}")


def diagnose_pod(ctx: Context, pod: V1Pod, events: Sequence[CoreV1Event], *, workload: str | None = None) -> Diagnosis:
    """One pod, in the order it comes to life; `workload` names its Deployment, for literal fixes."""
    name = name_of(pod)
    status = pod.status
    own_events = [event for event in events if event.involved_object.uid == uid_of(pod)]
    evidence: dict[str, Any] = {"pod": name, **describe_pod(pod, own_events)}
    look = f"`kubectl describe pod {name}` (Events at the bottom)"

    def stuck(problem: Problem, summary: str, fix: str) -> Diagnosis:
        return Diagnosis(f"pod {name}", Outlook.STUCK, problem, summary, look, fix, evidence)

    def progressing(summary: str) -> Diagnosis:
        return Diagnosis(f"pod {name}", Outlook.PROGRESSING, Problem.STARTING, summary, look, "", evidence)

    def lacking(otherwise: Problem, summary: str, message: str) -> Diagnosis:
        return _lacking(ctx, f"pod {name}", otherwise, summary, message, look, evidence)

    conditions = {condition.type: condition for condition in (status.conditions or [])} if status else {}
    scheduled = conditions.get("PodScheduled")
    if scheduled is not None and scheduled.status == "False":
        event = _message(latest_event(own_events, None, "FailedScheduling"))
        reason = scheduled.message or event or scheduled.reason or "Unschedulable"
        return lacking(Problem.UNSCHEDULABLE, f"pod {name} is Pending: it cannot be scheduled: {reason}", reason)
    if conditions.get("Ready") is not None and conditions["Ready"].status == "True":
        return Diagnosis(f"pod {name}", Outlook.READY, Problem.NONE, f"pod {name} is Ready.", evidence=evidence)
    statuses = [*(status.init_container_statuses or []), *(status.container_statuses or [])] if status else []
    mount = latest_event(own_events, None, "FailedMount")
    if mount is not None and not any(s.state and s.state.running for s in statuses):
        summary = f"pod {name} cannot start: its volumes cannot be mounted: {mount.message}"
        return lacking(Problem.FAILED_MOUNT, summary, mount.message or "")
    for container in statuses:
        found = _container_trouble(ctx, pod, container, own_events, workload, evidence, look)
        if found is not None:
            return found
    if status is not None and status.phase in ("Succeeded", "Failed"):
        return stuck(Problem.CRASH_LOOP, f"pod {name} has ended ({status.phase}): it must keep running.", "")
    waiting = next((s.state.waiting.reason for s in statuses if s.state and s.state.waiting), None)
    phase = (status.phase if status else None) or "Pending"
    return progressing(f"pod {name} is {phase}" + (f" ({waiting})." if waiting else "."))


def _container_trouble(
    ctx: Context,
    pod: V1Pod,
    container: V1ContainerStatus,
    events: Sequence[CoreV1Event],
    workload: str | None,
    evidence: dict[str, Any],
    look: str,
) -> Diagnosis | None:
    """Why this container keeps its pod from being Ready, or None if it does not (or not yet)."""
    name, pod_name = container.name, name_of(pod)
    subject = f"pod {pod_name}"
    state = container.state
    waiting = state.waiting if state else None
    terminated = state.terminated if state else None
    if waiting is not None and waiting.reason in IMAGE_PULL_REASONS:
        fix = (
            f"Use the workshop image: `kubectl set image deployment/{workload} {name}={PROJECT_IMAGE}`."
            if workload
            else f"Use the workshop image {PROJECT_IMAGE}."
        )
        return Diagnosis(
            subject,
            Outlook.STUCK,
            Problem.IMAGE_PULL,
            f"container {name} of pod {pod_name} cannot start: {waiting.reason}: {waiting.message or container.image}",
            look,
            fix,
            evidence,
        )
    if waiting is not None and waiting.reason in CONFIG_REASONS:
        summary = f"container {name} of pod {pod_name} cannot be created: {waiting.reason}: {waiting.message}"
        return _lacking(ctx, subject, Problem.CONTAINER_CONFIG, summary, waiting.message or "", look, evidence)
    last = container.last_state.terminated if container.last_state else None
    crashed = terminated if terminated is not None else (last if waiting is not None else None)
    restarts_always = (pod_spec(pod).restart_policy or "Always") == "Always"
    if crashed is not None and (crashed.exit_code != 0 or restarts_always):
        logs = last_log_lines(ctx, pod_name, name, previous=terminated is None)
        evidence["last log lines"] = logs
        said = f"; its last log lines:\n{logs}" if logs else " (it wrote no log)"
        return Diagnosis(
            subject,
            Outlook.STUCK,
            Problem.CRASH_LOOP,
            f"container {name} of pod {pod_name} exited with code {crashed.exit_code} ({crashed.reason}) and "
            f"has restarted {container.restart_count} time(s){' (CrashLoopBackOff)' if waiting else ''}{said}",
            f"`kubectl logs {pod_name} --previous` (why it exits) and `kubectl describe pod {pod_name}` "
            "(Last State, Exit Code)",
            "",
            evidence,
        )
    if state is not None and state.running is not None and not container.ready:
        return _not_ready_yet(ctx, pod, container, events, workload, evidence, look)
    return None


def _not_ready_yet(
    ctx: Context,
    pod: V1Pod,
    container: V1ContainerStatus,
    events: Sequence[CoreV1Event],
    workload: str | None,
    evidence: dict[str, Any],
    look: str,
) -> Diagnosis:
    """A running container not Ready: starting, or a readiness probe that will not pass."""
    pod_name = name_of(pod)
    subject = f"pod {pod_name}"
    running = container.state.running if container.state else None
    started = running.started_at if running else None
    age = (datetime.now(UTC) - started).total_seconds() if started else 0.0
    spec = next((c for c in pod_spec(pod).containers if c.name == container.name), None)
    probe = spec.readiness_probe if spec else None
    failures = [
        event
        for event in events
        if event.reason == "Unhealthy"
        and (event.message or "").startswith("Readiness")
        and (started is None or _when(event) >= started)
    ]
    if probe is None or not failures:
        return Diagnosis(
            subject,
            Outlook.PROGRESSING,
            Problem.STARTING,
            f"container {container.name} of pod {pod_name} started {age:.0f} s ago and is not Ready yet.",
            look,
            evidence=evidence,
        )
    failure = failures[-1].message or ""
    last_chance = (
        (probe.initial_delay_seconds or 0) + (probe.period_seconds or 10) * (probe.failure_threshold or 3) + PROBE_SLACK
    )
    hopeless = "names no port" in failure or HOPELESS_PROBE_STATUSES.search(failure) or age > last_chance
    answer = probe_answer(ctx, pod, probe, spec)
    if answer is not None:
        evidence["the probe's answer"] = f"{answer.status} {answer.text}"
    said = f" ({probe_target(probe)} answers {answer.status}: {answer.text})" if answer else ""
    summary = f"container {container.name} of pod {pod_name} runs but is not Ready: {failure}{said}"
    if answer is not None and 200 <= answer.status < 400:
        hopeless = False  # the app answers the probe now (a slow start): the kubelet's next probe passes
    if not hopeless:
        return Diagnosis(subject, Outlook.PROGRESSING, Problem.STARTING, summary, look, evidence=evidence)
    return Diagnosis(
        subject,
        Outlook.STUCK,
        Problem.PROBE_FAILING,
        summary,
        look,
        _probe_fix(workload, spec.name if spec else container.name, probe),
        evidence,
    )


def _lacking(
    ctx: Context, subject: str, otherwise: Problem, summary: str, message: str, look: str, evidence: dict[str, Any]
) -> Diagnosis:
    """A pod held back by `message`: STUCK while the object it names is missing (else `otherwise`).

    Once the attendee has created it, the kubelet (or the scheduler) tries again by itself: that is
    progress, worth waiting for, even while the pod still shows the old complaint.
    """
    missing = missing_object(message)
    if missing is None:
        return Diagnosis(subject, Outlook.STUCK, otherwise, summary, look, "", evidence)
    if _exists_now(ctx, message):
        kind, name = missing
        return Diagnosis(
            subject,
            Outlook.PROGRESSING,
            Problem.STARTING,
            f"{kind} {name} exists now; {subject} is tried again shortly (it said: {message})",
            look,
            evidence=evidence,
        )
    return Diagnosis(
        subject, Outlook.STUCK, Problem.MISSING_OBJECT, summary, look, _create_fix(*missing), evidence, missing
    )


def _exists_now(ctx: Context, message: str) -> bool:
    """Whether the object (and key) a complaint says is missing has been created since."""
    key = _MISSING_KEY.search(message)
    found = missing_object(message)
    if found is None:
        return False
    kind, name = found
    readers = {
        "PersistentVolumeClaim": ctx.core.read_namespaced_persistent_volume_claim,
        "ConfigMap": ctx.core.read_namespaced_config_map,
        "Secret": ctx.core.read_namespaced_secret,
    }
    try:
        obj = readers[kind](name, ctx.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    if key is None:
        return True
    data = dict(getattr(obj, "data", None) or {}) | dict(getattr(obj, "binary_data", None) or {})
    return key[1] in data


# --- Reading what `kubectl describe` reads ----------------------------------------------------------


def namespace_events(ctx: Context) -> list[CoreV1Event]:
    """The namespace's events, oldest first (one list for the whole diagnosis)."""
    events = ctx.core.list_namespaced_event(ctx.namespace).items
    return sorted(events, key=_when)


def latest_event(events: Sequence[CoreV1Event], uid: str | None, reason: str) -> CoreV1Event | None:
    """The newest event with `reason` (about the object with `uid`, if given)."""
    chosen = [e for e in events if e.reason == reason and (uid is None or e.involved_object.uid == uid)]
    return chosen[-1] if chosen else None


def pods_matching(ctx: Context, labels: dict[str, str]) -> list[V1Pod]:
    selector = ",".join(f"{key}={value}" for key, value in labels.items())
    return list(ctx.core.list_namespaced_pod(ctx.namespace, label_selector=selector).items)


def last_log_lines(ctx: Context, pod: str, container: str, *, previous: bool) -> str:
    """The container's last log lines ("" when it has none to give yet)."""
    try:
        text = ctx.core.read_namespaced_pod_log(
            pod, ctx.namespace, container=container, previous=previous, tail_lines=LOG_LINES
        )
    except ApiException as exc:
        if exc.status in (400, 404):
            return ""
        raise
    return "\n".join(str(text).rstrip("\n").splitlines()[-LOG_LINES:])


def describe_pod(pod: V1Pod, events: Sequence[CoreV1Event]) -> dict[str, Any]:
    """The parts of `kubectl describe pod` a diagnosis shows as evidence."""
    status = pod.status
    conditions = [
        f"{c.type}={c.status}" + (f" ({c.reason}: {c.message})" if c.reason else "")
        for c in ((status.conditions or []) if status else [])
    ]
    containers = []
    for container in (status.container_statuses or []) if status else []:
        state = container.state
        if state and state.waiting:
            now = f"Waiting ({state.waiting.reason})"
        elif state and state.terminated:
            now = f"Terminated ({state.terminated.reason}, exit code {state.terminated.exit_code})"
        else:
            now = "Running"
        last = container.last_state.terminated if container.last_state else None
        was = f"; last state: Terminated ({last.reason}, exit code {last.exit_code})" if last else ""
        containers.append(f"{container.name}: {now}, ready={container.ready}, restarts={container.restart_count}{was}")
    shown = [f"{e.type} {e.reason}: {e.message}" + (f" (x{e.count})" if (e.count or 1) > 1 else "") for e in events]
    return {
        "phase": status.phase if status else None,
        "conditions": conditions,
        "containers": containers,
        "events": shown[-8:],
    }


def missing_object(message: str) -> tuple[str, str] | None:
    """(kind, name) of the object a scheduling, mount or container error says is missing."""
    key = _MISSING_KEY.search(message)
    if key:
        return key[2], key[4]
    found = _MISSING.search(message)
    return (_KINDS[found[1].lower()], found[2]) if found else None


def probe_target(probe: Any) -> str:
    action = probe.http_get
    return f"GET {action.path or '/'} on port {action.port}" if action is not None else "the probe"


def probe_answer(ctx: Context, pod: V1Pod, probe: Any, spec: Any) -> Answer | None:
    """What the pod answers to its HTTP readiness probe, asked directly at the pod's address."""
    action = probe.http_get
    ip = pod.status.pod_ip if pod.status else None
    if action is None or not ip:
        return None
    port = action.port
    if isinstance(port, str) and not port.isdigit():
        port = next((p.container_port for p in (spec.ports or []) if p.name == port), None) if spec else None
        if port is None:
            return None
    try:
        response = ctx.http.get(f"http://{ip}:{port}{action.path or '/'}", timeout=2.0)
    except httpx.HTTPError:  # a pod that does not answer has already said so through its probe
        return None
    answer = answer_of(response.status_code, response.text)
    return None if proxy_reason(answer) else answer


def answer_of(status: int, body: str) -> Answer:
    """An HTTP answer with a JSON error body shown as its message text, not as escaped JSON."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    return Answer(status, message_text(body), document)


def proxy_reason(answer: Answer) -> str | None:
    """The service proxy's reason when it, not the app, answered (its errors are {code, reason, message})."""
    document = answer.document
    proxy_error = isinstance(document, dict) and set(document) == {"code", "reason", "message"}
    if answer.status in PROXY_STATUSES and proxy_error:
        return str(document["reason"])  # type: ignore[index]
    return None


# --- Fixes that are literal: computed from the lab's own manifests ----------------------------------


#: How to create objects no manifest under infra/base/ holds (`how_to_create`), by (kind, name).
_MAKERS: dict[tuple[str, str], str] = {}


def how_to_create(kind: str, name: str, instruction: str) -> None:
    """Teach the diagnosis the literal way to create `kind` `name` when a pod lacks it.

    For objects that are made, not applied from a manifest (a Secret with a random token): the lab
    module that makes them registers how, and a missing one is then answered with `instruction`.
    """
    _MAKERS[(kind, name)] = instruction


def _create_fix(kind: str, name: str) -> str:
    if (kind, name) in _MAKERS:
        return _MAKERS[(kind, name)]
    found = base_manifest(kind, name)
    if found is not None:
        path, _ = found
        return f"Create it from the lab's manifest: `kubectl apply --server-side -f {path}`."
    return f"Create the {kind} {name!r} the pod needs, then the pod starts by itself."


def reapply_fix(name: str, kind: str = "Deployment") -> str:
    """The literal fix for an object that differs from the lab's: apply the lab's manifest of it again.

    Client-side `kubectl apply`: its strategic merge replaces a changed volume source whole (retainKeys),
    and drops what the attendee's last apply added; a server-side apply would keep an emptyDir beside the
    lab's claim and be refused (may not specify more than 1 volume type).
    """
    found = base_manifest(kind, name)
    if found is None:
        return ""
    path, _ = found
    return f"Put back the lab's {kind}: `kubectl apply -f {path}`."


def _probe_fix(workload: str | None, container: str, probe: Any) -> str:
    """Restore the readiness probe the lab's manifest gives, as a patch kubectl can apply."""
    found = base_manifest("Deployment", workload) if workload else None
    if found is None:
        return ""
    _, manifest = found
    containers = manifest["spec"]["template"]["spec"]["containers"]
    index = next((i for i, c in enumerate(containers) if c.get("name") == container), None)
    if index is None or "readinessProbe" not in containers[index]:
        return reapply_fix(workload or "")
    wanted = containers[index]["readinessProbe"]
    patch = json.dumps(
        [{"op": "replace", "path": f"/spec/template/spec/containers/{index}/readinessProbe", "value": wanted}],
        separators=(",", ":"),
    )
    return (
        f"Probe what the app serves, as the lab's manifest does ({_describe_probe(wanted)}): "
        f"`kubectl patch deployment {workload} --type=json -p '{patch}'`."
    )


def _describe_probe(probe: dict[str, Any]) -> str:
    action = probe.get("httpGet") or {}
    return f"GET {action.get('path', '/')} on port {action.get('port')}"


# --- Small readers ----------------------------------------------------------------------------------


def _not_found(kind: str, name: str) -> Diagnosis:
    found = base_manifest(kind, name)
    fix = f"Apply it: `kubectl apply --server-side -f {found[0]}`." if found else f"Create the {kind} {name!r}."
    return Diagnosis(
        f"{kind} {name}",
        Outlook.STUCK,
        Problem.NOT_FOUND,
        f"There is no {kind} {name!r} in your namespace.",
        look=f"`kubectl get {kind.lower()}s`",
        fix=fix,
        missing=(kind, name),
    )


def _newest_replica_set(ctx: Context, deployment: V1Deployment) -> V1ReplicaSet | None:
    selector = ",".join(f"{k}={v}" for k, v in (deployment.spec.selector.match_labels or {}).items())
    owned = [
        rs
        for rs in ctx.apps.list_namespaced_replica_set(ctx.namespace, label_selector=selector).items
        if _owned_by(rs, uid_of(deployment))
    ]
    return max(owned, key=_revision, default=None)


def _revision(replica_set: V1ReplicaSet) -> int:
    annotations = meta(replica_set).annotations or {}
    try:
        return int(annotations.get("deployment.kubernetes.io/revision", "0"))
    except ValueError:
        return 0


def _owned_by(obj: Any, uid: str) -> bool:
    return any(owner.uid == uid for owner in meta(obj).owner_references or [])


def _when(event: CoreV1Event) -> datetime:
    stamp = event.last_timestamp or event.event_time or event.first_timestamp or event.metadata.creation_timestamp
    return stamp if stamp is not None else datetime.min.replace(tzinfo=UTC)


def _message(event: CoreV1Event | None) -> str:
    return (event.message or "") if event is not None else ""
