"""One pod's lifecycle on the node: sandbox, init containers, app containers, probes, termination.

A `PodWorker` owns the pod's status while it runs; each container has a `ContainerRunner` that
starts instances, probes them and restarts them by the pod's restartPolicy with crash back-off.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import json
import logging
import shutil
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from localcluster.api.cluster import Cluster, now
from localcluster.api.errors import ApiError
from localcluster.images import pull_error, runs_locally
from localcluster.kubelet import _env, _status
from localcluster.kubelet._backoff import CrashBackOff
from localcluster.kubelet._env import ContainerConfigError, expand
from localcluster.kubelet._logs import LogLimits, LogService, termination_message
from localcluster.kubelet._probes import ProbeState, ProbeTarget, run_probe
from localcluster.kubelet._processes import Instance, StartError, signal_group, start
from localcluster.kubelet._security import EVENT_REASON as SECURITY_EVENT_REASON
from localcluster.kubelet._security import NodeUser, SecurityPlan, apply_fs_group, blocked_by, fs_group_warning, plan
from localcluster.kubelet._status import ContainerRecord
from localcluster.kubelet._volumes import MountTable, VolumeError, prepare_volumes

if TYPE_CHECKING:
    import httpx

    from localcluster.api.resources import ResourceType

log = logging.getLogger("localcluster.kubelet")

#: How long a pod waits before retrying a missing ConfigMap, Secret or volume.
CONFIG_RETRY_SECONDS = 10.0
#: What a container that vanished while the kubelet was down leaves in lastState (upstream's words).
UNKNOWN_TERMINATION = {
    "exitCode": 137,
    "reason": "ContainerStatusUnknown",
    "message": "The container could not be located when the pod was terminated",
}


@dataclass(frozen=True)
class Launch:
    """How a container's process starts; exec'd commands reuse its cwd, env, mounts and identity."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    mounts: MountTable
    #: Whom its processes run as (None: localcluster's own user), and what the kubelet must say about it.
    security: SecurityPlan = field(default_factory=lambda: SecurityPlan(None))

    def process_options(self) -> dict[str, Any]:
        """Keyword arguments that start a process as this container's user (none for localcluster's)."""
        return self.security.run_as.process_options() if self.security.run_as else {}


class PodHost(Protocol):
    """What a pod worker asks of the kubelet that runs it (`Kubelet` is the one there is)."""

    @property
    def home(self) -> Path: ...
    @property
    def pods_dir(self) -> Path: ...
    @property
    def cluster(self) -> Cluster: ...
    @property
    def pods(self) -> ResourceType: ...
    @property
    def host(self) -> _env.HostEndpoints: ...
    @property
    def node_user(self) -> NodeUser: ...
    @property
    def http(self) -> httpx.AsyncClient: ...
    @property
    def logs(self) -> LogService: ...
    @property
    def log_limits(self) -> LogLimits: ...

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...
    def service_account_token(self, pod: dict[str, Any], audience: str, expiration_seconds: int) -> str: ...
    def services(self, namespace: str) -> list[dict[str, Any]]: ...
    def allocate_ip(self) -> str: ...
    def owns_ip(self, address: str | None) -> bool: ...
    def forget_old_logs(self, pod_dir: Path, container: str, keep: set[str]) -> None: ...
    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None: ...


class PodWorker:
    def __init__(self, kubelet: PodHost, pod: dict[str, Any]) -> None:
        self.kubelet = kubelet
        self.pod = pod
        metadata, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
        self.uid: str = metadata["uid"]
        self.namespace: str = metadata.get("namespace", "default")
        self.name: str = metadata["name"]
        self.dir = kubelet.pods_dir / self.uid
        self.root = self.dir / "root"
        self.pod_ip: str | None = status.get("podIP")
        self.start_time: str | None = status.get("startTime")
        self.sandbox_ready = False
        self.volumes: dict[str, Path] = {}
        self.stopping = asyncio.Event()
        #: Process groups of `kubectl exec` sessions, killed with the pod.
        self.exec_groups: set[int] = set()
        self.runners = [
            ContainerRunner(self, container, init=True, reported=status.get("initContainerStatuses"))
            for container in spec.get("initContainers") or []
        ] + [
            ContainerRunner(self, container, init=False, reported=status.get("containerStatuses"))
            for container in spec.get("containers") or []
        ]
        if spec.get("initContainers") and not all(r.record.succeeded for r in self.init_runners):
            for runner in self.app_runners:
                if "waiting" in runner.record.state:
                    runner.record.wait("PodInitializing")

    @property
    def init_runners(self) -> list[ContainerRunner]:
        return [r for r in self.runners if r.init]

    @property
    def app_runners(self) -> list[ContainerRunner]:
        return [r for r in self.runners if not r.init]

    @property
    def spec(self) -> dict[str, Any]:
        return self.pod["spec"]

    # -- status and events ---------------------------------------------------------------------

    def publish(self) -> None:
        """Write the pod's status if it changed (the kubelet is the only writer of these fields)."""
        cluster, pods = self.kubelet.cluster, self.kubelet.pods
        current = cluster.find(pods, self.namespace, self.name)
        if current is None or current["metadata"]["uid"] != self.uid:
            return
        status = _status.pod_status(
            current.get("status") or {},
            self.spec,
            init=[r.record for r in self.init_runners],
            app=[r.record for r in self.app_runners],
            pod_ip=self.pod_ip,
            start_time=self.start_time or now(),
            sandbox_ready=self.sandbox_ready,
            now=now(),
        )
        if status == current.get("status"):
            return
        current["status"] = json.loads(json.dumps(status))
        try:
            written = cluster.replace(
                pods, "v1", self.namespace, self.name, current, subresource="status", user_agent="kubelet/v1.37.0"
            )
        except ApiError as exc:
            log.info("pod %s/%s: status not written: %s", self.namespace, self.name, exc.message)
            return
        self.pod = written.obj

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.kubelet.cluster.record_event(
            self.pod, reason, message, event_type="Warning" if warning else "Normal", component="kubelet"
        )

    async def pause(self, seconds: float) -> bool:
        """Wait up to `seconds`, or less if the pod is being stopped; True if it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), max(seconds, 0))
        return self.stopping.is_set()

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Bring the pod up and keep it running until its containers are done or it is stopped."""
        if not await self._sandbox():
            return
        for runner in self.init_runners:
            if not await runner.run():
                self.publish()
                return
        self.publish()
        await asyncio.gather(*(runner.run() for runner in self.app_runners))
        self.publish()

    async def _sandbox(self) -> bool:
        """The pod's address, directories and volumes (retried while a volume's source is missing)."""
        self.start_time = self.start_time or now()
        if not self.kubelet.owns_ip(self.pod_ip):
            self.pod_ip = self.kubelet.allocate_ip()
        # Passable but not listable for the users pods may run as, so no pod finds another's volumes.
        self.kubelet.pods_dir.mkdir(mode=0o711, exist_ok=True)
        self.dir.mkdir(mode=0o711, exist_ok=True)
        self.root.mkdir(exist_ok=True)
        while True:
            try:
                self.volumes = prepare_volumes(
                    self.pod, self.dir, self.kubelet.home, self.kubelet.lookup, self.kubelet.service_account_token
                )
                break
            except VolumeError as exc:
                self.event("FailedMount", str(exc), warning=True)
                self.publish()
                if await self.pause(CONFIG_RETRY_SECONDS):
                    return False
        apply_fs_group(self.pod, self.volumes, self.kubelet.node_user)
        if (not_applied := fs_group_warning(self.pod, self.kubelet.node_user)) is not None:
            self.event(SECURITY_EVENT_REASON, not_applied, warning=True)
        self.sandbox_ready = True
        self.publish()
        return True

    async def stop(self, grace: float) -> None:
        """Stop every container (SIGTERM, then SIGKILL after `grace`) and publish their final states."""
        self.stopping.set()
        await asyncio.gather(*(runner.stop(grace) for runner in self.runners))
        for pgid in list(self.exec_groups):
            signal_group(pgid, signal.SIGKILL)
        self.publish()

    # -- container configuration ---------------------------------------------------------------

    def launch(self, container: dict[str, Any]) -> Launch:
        """Command line, working directory and environment of a container (ContainerConfigError if not yet)."""
        assert self.pod_ip is not None
        kubelet = self.kubelet
        mounts = MountTable.link(self.root, container, self.volumes)
        declared = _env.declared_env(
            self.pod,
            container,
            pod_ip=self.pod_ip,
            lookup=kubelet.lookup,
            services=kubelet.services(self.namespace),
            host=kubelet.host,
        )
        declared = {key: mounts.rewrite(value) for key, value in declared.items()}
        env = _env.process_env(
            declared,
            pod_name=self.name,
            namespace=self.namespace,
            pod_ip=self.pod_ip,
            home=str(self.root),
            host=kubelet.host,
        )
        words = [*(container.get("command") or []), *(container.get("args") or [])]
        if not words:
            raise ContainerConfigError(
                "localcluster runs the workshop image without a default command: give the container a command"
            )
        argv = [mounts.rewrite_argument(expand(str(word), declared)) for word in words]
        cwd = mounts.working_dir(container.get("workingDir"))
        if cwd.is_relative_to(self.root):
            cwd.mkdir(parents=True, exist_ok=True)
        executable = shutil.which(argv[0], path=env.get("PATH")) or argv[0]
        needed = [Path(executable), cwd, *self.volumes.values()]
        security = plan(self.pod, container, kubelet.node_user, lambda run_as: blocked_by(needed, run_as))
        return Launch(argv, cwd, env, mounts, security)


class ContainerRunner:
    """Runs one container's instances: start, probe, wait, restart with back-off, stop."""

    def __init__(
        self, worker: PodWorker, container: dict[str, Any], *, init: bool, reported: list[dict[str, Any]] | None
    ) -> None:
        self.worker = worker
        self.container = container
        self.init = init
        self.name: str = container["name"]
        previous = next((s for s in reported or [] if s.get("name") == self.name), None)
        self.record = ContainerRecord.restored(self.name, container.get("image", ""), init, previous)
        if self.record.running:  # it ran when the kubelet went away, and is gone now
            vanished = {**UNKNOWN_TERMINATION, "finishedAt": now(), "containerID": self.record.container_id}
            vanished["startedAt"] = self.record.state["running"].get("startedAt")
            self.record.last_state = {"terminated": vanished}
            self.record.wait("ContainerCreating")
        self.backoff = CrashBackOff()
        self.instance: Instance | None = None
        #: How the running instance was started (what `kubectl exec` runs commands with).
        self.launched: Launch | None = None
        #: When the last instance ended (epoch seconds), for the back-off; restored ones use finishedAt.
        self.finished_at: float | None = None

    @property
    def restart_policy(self) -> str:
        return self.worker.spec.get("restartPolicy", "Always")

    def restarts_after(self, exit_code: int) -> bool:
        if self.init:
            return exit_code != 0 and self.restart_policy != "Never"
        return self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and exit_code != 0)

    async def run(self) -> bool:
        """Run until the container is done for good (True if it succeeded) or the pod stops."""
        worker, record = self.worker, self.record
        while not worker.stopping.is_set():
            done = record.terminated
            if done is not None:
                if not self.restarts_after(done.get("exitCode", 1)):
                    return record.succeeded
                record.last_state = {"terminated": done}
                finished_at = self.finished_at or _epoch(done.get("finishedAt"))
                delay = self.backoff.delay_after(finished_at)
                if delay and await self._back_off(delay, finished_at):
                    break
            if not runs_locally(record.image):
                await self._refuse_image()
                break
            try:
                launch = worker.launch(self.container)
            except ContainerConfigError as exc:
                record.wait("CreateContainerConfigError", str(exc))
                worker.event("Failed", f"Error: {exc}", warning=True)
                worker.publish()
                if await worker.pause(CONFIG_RETRY_SECONDS):
                    break
                continue
            for warning in launch.security.warnings:
                worker.event(SECURITY_EVENT_REASON, warning, warning=True)
            await self._run_instance(launch)
        return record.succeeded

    async def _back_off(self, delay: float, finished_at: float) -> bool:
        """Wait in CrashLoopBackOff; True if the pod stopped meanwhile."""
        worker = self.worker
        message = (
            f"back-off {int(delay)}s restarting failed container={self.name} "
            f"pod={worker.name}_{worker.namespace}({worker.uid})"
        )
        self.record.wait("CrashLoopBackOff", message)
        worker.event("BackOff", f"Back-off restarting failed container {self.name} in pod {message.split('pod=')[1]}")
        worker.publish()
        return await worker.pause(finished_at + delay - time.time())

    async def _refuse_image(self) -> None:
        """No runtime for this image: ErrImagePull, then ImagePullBackOff with back-off, until the pod goes."""
        worker, image = self.worker, self.record.image
        backoff = CrashBackOff()
        while True:
            message = pull_error(image)
            worker.event("Pulling", f'Pulling image "{image}"')
            self.record.wait("ErrImagePull", message)
            worker.event("Failed", f'Failed to pull image "{image}": {message}', warning=True)
            worker.event("Failed", "Error: ErrImagePull", warning=True)
            worker.publish()
            delay = max(backoff.delay_after(time.time()), backoff.initial)
            self.record.wait("ImagePullBackOff", f'Back-off pulling image "{image}": ErrImagePull: {message}')
            worker.event("BackOff", f'Back-off pulling image "{image}"')
            worker.event("Failed", "Error: ImagePullBackOff", warning=True)
            worker.publish()
            if await worker.pause(delay):
                return

    async def _run_instance(self, launch: Launch) -> None:
        worker, record = self.worker, self.record
        kubelet = worker.kubelet
        if record.container_id or record.last_state:
            record.restart_count += 1
        started = now()
        try:
            instance = await start(
                launch.argv,
                cwd=launch.cwd,
                env=launch.env,
                pod_dir=worker.dir,
                container=self.name,
                home=kubelet.home,
                label=f"pod {worker.namespace}/{worker.name} container {self.name}",
                log_limits=kubelet.log_limits,
                process_options=launch.process_options(),
                stdin=bool(self.container.get("stdin")),
                tty=bool(self.container.get("tty")),
            )
        except StartError as exc:
            record.container_id = None
            record.state = {
                "terminated": {"exitCode": 128, "reason": "StartError", "message": str(exc), "startedAt": started}
                | {"finishedAt": now()}
            }
            self.finished_at = time.time()
            worker.event("Failed", f"Error: {exc}", warning=True)
            worker.publish()
            return
        self.instance, self.launched = instance, launch
        kubelet.logs.live[instance.writer.path] = instance.writer.live
        kubelet.forget_old_logs(worker.dir, self.name, keep={instance.container_id, *self._last_ids()})
        record.container_id = instance.container_id
        record.state = {"running": {"startedAt": started}}
        record.started = "startupProbe" not in self.container
        record.ready = record.started and "readinessProbe" not in self.container and not self.init
        worker.event("Pulled", f'Container image "{record.image}" already present on machine')
        worker.event("Created", f"Created container: {self.name}")
        worker.event("Started", f"Started container {self.name}")
        worker.publish()
        probes = asyncio.create_task(self._probe(launch)) if not self.init else None
        exit_code = await instance.wait()
        if probes is not None:
            probes.cancel()
            await asyncio.gather(probes, return_exceptions=True)
        self.instance = self.launched = None
        record.ready = record.started = False
        terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": started,
            "finishedAt": now(),
            "containerID": instance.container_id,
        }
        if exit_code != 0 and self.container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            # No termination-log file here, so the message is always the log's end, as upstream falls back to.
            message = termination_message(instance.writer.path)
            if message:
                terminated["message"] = message
        record.state = {"terminated": terminated}
        self.finished_at = time.time()
        worker.publish()

    def _last_ids(self) -> set[str]:
        last = self.record.last_state.get("terminated") or {}
        return {last["containerID"]} if last.get("containerID") else set()

    async def stop(self, grace: float) -> None:
        instance = self.instance
        if instance is None:
            return
        self.worker.event("Killing", f"Stopping container {self.name}")
        await instance.stop(grace)

    # -- probes --------------------------------------------------------------------------------

    async def _probe(self, launch: Launch) -> None:
        """Startup probe first; then liveness and readiness side by side, as the prober manager runs them."""
        container, worker = self.container, self.worker
        ports = {str(p["name"]): int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name")}
        assert worker.pod_ip is not None
        target = ProbeTarget(worker.pod_ip, ports, launch.env, launch.cwd)
        started_at = time.monotonic()
        if "startupProbe" in container:
            passed = await self._probe_loop("Startup", container["startupProbe"], target, started_at, self._on_startup)
            if not passed:
                return
        loops = [
            self._probe_loop(kind, container[key], target, started_at, handler)
            for kind, key, handler in (
                ("Liveness", "livenessProbe", self._on_liveness),
                ("Readiness", "readinessProbe", self._on_readiness),
            )
            if key in container
        ]
        await asyncio.gather(*loops)

    async def _probe_loop(
        self,
        kind: str,
        probe: dict[str, Any],
        target: ProbeTarget,
        started_at: float,
        handle: Callable[[bool], bool],
    ) -> bool:
        """Probe every periodSeconds after initialDelaySeconds; `handle` says whether to go on."""
        worker = self.worker
        state = ProbeState(probe)
        period = float(probe.get("periodSeconds") or 10)
        next_at = started_at + float(probe.get("initialDelaySeconds") or 0)
        logged: bool | None = None  # the log says when a probe's verdict changes, not every probe
        while True:
            if await worker.pause(next_at - time.monotonic()):
                return False
            next_at = time.monotonic() + period
            result = await run_probe(probe, target, worker.kubelet.http)
            if not result.success:
                worker.event("Unhealthy", f"{kind} probe failed: {result.output}", warning=True)
            verdict = state.observe(result)
            if verdict is not None and verdict != logged:
                logged = verdict
                outcome = "succeeds" if verdict else f"fails: {result.output}"
                log.info("pod %s/%s container %s: %s probe %s", worker.namespace, worker.name, self.name, kind, outcome)
            if verdict is not None and not handle(verdict):
                return verdict

    def _on_startup(self, passed: bool) -> bool:
        if passed:
            self.record.started = True
            self.record.ready = "readinessProbe" not in self.container
            self.worker.publish()
        else:
            self._restart_for("startup")
        return False

    def _on_liveness(self, alive: bool) -> bool:
        if not alive:
            self._restart_for("liveness")
            return False
        return True

    def _on_readiness(self, ready: bool) -> bool:
        if self.record.ready != ready:
            self.record.ready = ready
            self.worker.publish()
        return True

    def _restart_for(self, probe: str) -> None:
        """A failed liveness/startup probe kills the instance; the run loop restarts it by policy."""
        instance = self.instance
        if instance is None:
            return
        self.worker.event("Killing", f"Container {self.name} failed {probe} probe, will be restarted")
        probe_spec = self.container.get(f"{probe}Probe") or {}
        grace = probe_spec.get("terminationGracePeriodSeconds", self.worker.spec.get("terminationGracePeriodSeconds"))
        self.worker.kubelet.spawn(instance.stop(float(30 if grace is None else grace)))


def _epoch(timestamp: str | None) -> float:
    """Seconds since the epoch of an RFC 3339 time (now if absent)."""
    if not timestamp:
        return time.time()
    return float(calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ")))
