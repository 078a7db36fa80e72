"""batch/v1 Jobs, as kube-controller-manager's job controller and ttl-after-finished controller run them.

A Job runs pods of its template (`<job>-<random>`, labelled `batch.kubernetes.io/job-name` and
`batch.kubernetes.io/controller-uid` by the API's defaulting) until `completions` of them have
succeeded, at most `parallelism` at a time. Failed pods are replaced after the pod failure back-off
(10 s, doubling, at most 6 min) until more than `backoffLimit` have failed (with `OnFailure`,
container restarts count too), or `activeDeadlineSeconds` passes. The Job then ends with the
conditions upstream writes: `SuccessCriteriaMet` and `Complete` (reason `CompletionsReached`), or
`FailureTarget` and `Failed` (`BackoffLimitExceeded`, `DeadlineExceeded`), active pods deleted. A
finished Job with `ttlSecondsAfterFinished` is deleted that long after it finished (its pods go with
it through the garbage collector). `suspend: true` deletes active pods until resumed.

Counts come from the pods that exist: a finished pod deleted by hand no longer counts toward
`succeeded`/`failed` once the status has moved past it, as the status keeps the highest count seen
(upstream keeps exact counts with a tracking finalizer on each pod).
"""

from __future__ import annotations

import json
from typing import Any

from localcluster.api.cluster import Cluster, now
from localcluster.api.errors import ApiError
from localcluster.controllers.base import write_status
from localcluster.controllers.endpoints import is_pod_ready
from localcluster.controllers.workloads import WorkloadController, is_active, log, seconds_since
from localcluster.store import WatchEvent

Obj = dict[str, Any]
JOB_KEYS = frozenset({"batch/jobs", "core/pods"})
#: The pod failure back-off (DefaultJobPodFailureBackOff, MaxJobPodFailureBackOff).
FAILURE_BACKOFF_SECONDS, MAX_FAILURE_BACKOFF_SECONDS = 10.0, 360.0
_COMPLETED = ("CompletionsReached", "Reached expected number of succeeded pods")
_BACKOFF_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
_DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")


def _condition_holds(job: Obj, kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or []
    )


def _with_condition(conditions: list[Obj], kind: str, reason: str, message: str, status: str = "True") -> list[Obj]:
    previous = next((c for c in conditions if c.get("type") == kind), None)
    if previous and (previous.get("status"), previous.get("reason")) == (status, reason):
        return conditions
    condition = {
        "type": kind,
        "status": status,
        "lastProbeTime": now(),
        "lastTransitionTime": now(),
        "reason": reason,
        "message": message,
    }
    return [c for c in conditions if c.get("type") != kind] + [condition]


def _finished_at(pod: Obj) -> str:
    """When a finished pod's last container ended (for the failure back-off)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    times = [str((s.get("state") or {}).get("terminated", {}).get("finishedAt", "")) for s in statuses]
    return max(times, default="") or pod["metadata"].get("creationTimestamp", "")


def _restarts(pods: list[Obj]) -> int:
    return sum(
        s.get("restartCount", 0)
        for pod in pods
        for key in ("initContainerStatuses", "containerStatuses")
        for s in (pod.get("status") or {}).get(key) or []
    )


class JobController(WorkloadController):
    def __init__(self, cluster: Cluster) -> None:
        super().__init__(cluster, "job-controller")
        self.jobs = cluster.registry.get("batch", "jobs")

    def reconcile(self, _events: list[WatchEvent]) -> None:
        self.sync_owners(self.jobs, self.pods, self._sync)

    def _sync(self, job: Obj, pods: list[Obj]) -> None:
        spec, status = job["spec"], json.loads(json.dumps(job.get("status") or {}))
        active = [pod for pod in pods if is_active(pod)]
        if _condition_holds(job, "Complete") or _condition_holds(job, "Failed"):
            for pod in active:
                self.delete_pod(job, pod)
            self._expire(job)
            return
        conditions: list[Obj] = list(status.get("conditions") or [])
        if spec.get("suspend"):
            for pod in active:
                self.delete_pod(job, pod)
            active = []
            conditions = _with_condition(conditions, "Suspended", "JobSuspended", "Job suspended")
        else:
            if any(c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions):
                conditions = _with_condition(conditions, "Suspended", "JobResumed", "Job resumed", status="False")
            status.setdefault("startTime", now())
        phases = [(pod.get("status") or {}).get("phase") for pod in pods]
        succeeded = max(status.get("succeeded", 0), phases.count("Succeeded"))
        failed_pods = [pod for pod in pods if (pod.get("status") or {}).get("phase") == "Failed"]
        failed = max(status.get("failed", 0), len(failed_pods))
        outcome = None if spec.get("suspend") else self._outcome(job, succeeded, failed, active)
        if outcome is not None:
            for pod in active:
                self.delete_pod(job, pod)
            active = []
            kind, (reason, message) = outcome
            first = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
            conditions = _with_condition(conditions, first, reason, message)
            conditions = _with_condition(conditions, kind, reason, message)
            if kind == "Complete":
                status["completionTime"] = now()
            self.cluster.record_event(
                job,
                "Completed" if kind == "Complete" else reason,
                "Job completed" if kind == "Complete" else message,
                event_type="Normal" if kind == "Complete" else "Warning",
                component=self.agent,
            )
        elif not spec.get("suspend"):
            active = self._scale(job, active, succeeded, failed_pods)
        status.update(
            {
                "active": len(active),
                "ready": sum(1 for pod in active if is_pod_ready(pod)),
                "terminating": sum(1 for pod in pods if pod["metadata"].get("deletionTimestamp")),
                "succeeded": succeeded,
                "failed": failed,
                "uncountedTerminatedPods": {},
                "conditions": conditions,
            }
        )
        for field in ("active", "succeeded", "failed"):
            if not status[field]:
                del status[field]
        if not conditions:
            del status["conditions"]
        write_status(self.cluster, self.jobs, job, status, self.agent)

    def _outcome(self, job: Obj, succeeded: int, failed: int, active: list[Obj]) -> tuple[str, tuple[str, str]] | None:
        """The Job's end, if it has come: ("Complete" | "Failed", (reason, message))."""
        spec = job["spec"]
        completions = spec.get("completions")
        if (completions is not None and succeeded >= completions) or (
            completions is None and succeeded > 0 and not active
        ):
            return "Complete", _COMPLETED
        limit = spec.get("backoffLimit", 6)
        restarts = _restarts(active) if spec["template"]["spec"].get("restartPolicy") == "OnFailure" else 0
        if failed > limit or (restarts and (restarts >= limit if limit else restarts > 0)):
            return "Failed", _BACKOFF_EXCEEDED
        deadline = spec.get("activeDeadlineSeconds")
        started = (job.get("status") or {}).get("startTime")
        if deadline is not None and started and seconds_since(started) >= deadline:
            return "Failed", _DEADLINE_EXCEEDED
        return None

    def _scale(self, job: Obj, active: list[Obj], succeeded: int, failed_pods: list[Obj]) -> list[Obj]:
        """Create or delete pods toward the wanted number of active ones; returns the active pods."""
        spec = job["spec"]
        parallelism, completions = spec.get("parallelism", 1), spec.get("completions")
        # Without completions, the first success means the work is done: no new pods.
        wanted = (0 if succeeded else parallelism) if completions is None else min(parallelism, completions - succeeded)
        if len(active) > wanted:
            newest_first = sorted(active, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
            for pod in newest_first[: len(active) - wanted]:
                self.delete_pod(job, pod)
            return newest_first[len(active) - wanted :]
        if len(active) < wanted and not self._backing_off(failed_pods):
            template = json.loads(json.dumps(spec["template"]))
            metadata = template.get("metadata") or {}
            for _ in range(wanted - len(active)):
                created = self.create_pod(
                    job,
                    {
                        "generateName": f"{job['metadata']['name']}-",
                        "labels": metadata.get("labels") or {},
                        "annotations": metadata.get("annotations") or {},
                    },
                    json.loads(json.dumps(template.get("spec") or {})),
                )
                if created is not None:
                    active.append(created)
        return active

    def _backing_off(self, failed_pods: list[Obj]) -> bool:
        """Whether the failure back-off since the last failed pod is still running."""
        if not failed_pods:
            return False
        delay = min(FAILURE_BACKOFF_SECONDS * 2 ** (len(failed_pods) - 1), MAX_FAILURE_BACKOFF_SECONDS)
        last = max(_finished_at(pod) for pod in failed_pods)
        return bool(last) and seconds_since(last) < delay

    def _expire(self, job: Obj) -> None:
        """ttlSecondsAfterFinished: delete a finished Job once its time is up (the ttl-after-finished controller)."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        status = job.get("status") or {}
        finished = status.get("completionTime") or max(
            (c.get("lastTransitionTime", "") for c in status.get("conditions") or [] if c.get("type") == "Failed"),
            default="",
        )
        if not finished or seconds_since(finished) < ttl:
            return
        metadata = job["metadata"]
        try:
            self.cluster.delete(
                self.jobs,
                metadata["namespace"],
                metadata["name"],
                propagation="Foreground",
                preconditions={"uid": metadata["uid"]},
            )
        except ApiError as exc:
            log.info("ttl-after-finished-controller: job %s not deleted: %s", metadata["name"], exc.message)
