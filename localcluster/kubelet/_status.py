"""Pod status as the kubelet reports it: container states, phase and conditions (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localcluster.images import runs_locally
from localcluster.kubelet._podnet import HOST_IP

TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass
class ContainerRecord:
    """What the kubelet knows about one container; `status()` is its entry in the pod's status."""

    name: str
    image: str
    init: bool = False
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str | None = None

    @classmethod
    def restored(cls, name: str, image: str, init: bool, reported: dict[str, Any] | None) -> ContainerRecord:
        """The record as a previous run of the kubelet left it in the pod's status."""
        record = cls(name, image, init)
        if reported:
            record.state = reported.get("state") or record.state
            record.last_state = reported.get("lastState") or {}
            record.restart_count = int(reported.get("restartCount") or 0)
            record.container_id = reported.get("containerID")
        return record

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def terminated(self) -> dict[str, Any] | None:
        return self.state.get("terminated")

    @property
    def succeeded(self) -> bool:
        return (self.terminated or {}).get("exitCode") == 0

    def wait(self, reason: str, message: str | None = None) -> None:
        self.state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        self.ready = self.started = False

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image if runs_locally(self.image) else "",
            "started": self.started,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def phase(restart_policy: str, init: list[ContainerRecord], app: list[ContainerRecord]) -> str:
    """Upstream's `getPhase`: init containers first, then running/waiting/stopped app containers."""
    for record in init:
        if record.succeeded:
            continue
        failed = record.terminated or record.last_state.get("terminated")
        if failed and failed.get("exitCode") != 0 and restart_policy == "Never":
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for record in app:
        if record.running:
            running += 1
        elif record.terminated:
            stopped += 1
            succeeded += record.succeeded
        elif record.last_state.get("terminated"):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(kind: str, ok: bool, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    condition: dict[str, Any] = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def conditions(pod_phase: str, sandbox_ready: bool, init: list[ContainerRecord], app: list[ContainerRecord]) -> list:
    """PodReadyToStartContainers, Initialized, Ready, ContainersReady (PodScheduled is the scheduler's)."""
    completed = pod_phase in TERMINAL_PHASES
    incomplete = [r.name for r in init if not r.succeeded]
    unready = [r.name for r in app if not r.ready]
    if completed:
        initialized = _condition("Initialized", not incomplete, "PodCompleted")
        ready = [_condition(kind, False, "PodCompleted") for kind in ("Ready", "ContainersReady")]
    else:
        waiting_for = f"containers with incomplete status: [{' '.join(incomplete)}]"
        initialized = (
            _condition("Initialized", True)
            if not incomplete
            else _condition("Initialized", False, "ContainersNotInitialized", waiting_for)
        )
        ready = [
            _condition(kind, True)
            if not unready
            else _condition(kind, False, "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
            for kind in ("Ready", "ContainersReady")
        ]
    return [_condition("PodReadyToStartContainers", sandbox_ready and not completed), initialized, *ready]


def merge_conditions(old: list[dict[str, Any]], new: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """New conditions keep their lastTransitionTime while their status stays; others keep theirs."""
    previous = {c.get("type"): c for c in old}
    merged = []
    for condition in new:
        before = previous.pop(condition["type"], None) or {}
        unchanged = before.get("status") == condition["status"]
        merged.append({**condition, "lastTransitionTime": before.get("lastTransitionTime") if unchanged else now})
    merged.extend(previous.values())  # PodScheduled and any other writer's conditions
    return merged


def pod_status(
    old: dict[str, Any],
    spec: dict[str, Any],
    *,
    init: list[ContainerRecord],
    app: list[ContainerRecord],
    pod_ip: str | None,
    start_time: str,
    sandbox_ready: bool,
    now: str,
) -> dict[str, Any]:
    """The pod's whole status from the kubelet's records, carrying what others wrote (qosClass, PodScheduled)."""
    pod_phase = phase(spec.get("restartPolicy", "Always"), init, app)
    current = conditions(pod_phase, sandbox_ready, init, app)
    status: dict[str, Any] = {
        "phase": pod_phase,
        "conditions": merge_conditions(old.get("conditions") or [], current, now),
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "startTime": start_time,
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if init:
        status["initContainerStatuses"] = [record.status() for record in init]
    status["containerStatuses"] = [record.status() for record in app]
    if "qosClass" in old:
        status["qosClass"] = old["qosClass"]
    return status
