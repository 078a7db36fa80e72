"""Lab 00, setup: reach the cluster, find your namespace, run a first pod and read what it printed."""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes.client import V1Pod
from kubernetes.client.exceptions import ApiException

from checkers._context import Context
from checkers._registry import check
from checkers._result import CheckResult
from checkers._runner import observe
from checkers.diagnosis import Diagnosis, Outlook, diagnose_pod, namespace_events
from checkers.diagnosis._fields import pod_spec
from labkit._apply import MANIFESTS, apply, manifest
from labkit.settings import Settings

POD_NAME = "hello"
GREETING = "hello from the bookstore"
#: The manifests the notebook applies; `solve` applies the very same files.
HELLO_POD = "00-setup/hello-pod.yaml"
HELLO_READER_POD = "00-setup/hello-pod-reader.yaml"
FINISHED_PHASES = ("Succeeded", "Failed")


@check("00.1", title="The Kubernetes API answers", timeout=10)
def api_answers(ctx: Context) -> CheckResult:
    """Reaching the API at all is the environment's job, so this check only PASSES or ERRORs."""
    host = ctx.core.api_client.configuration.host
    # Subresources such as pods/log are not kinds of their own.
    kinds = sorted(r.name for r in ctx.core.get_api_resources().resources if "/" not in r.name)
    return CheckResult.passed(
        f"The Kubernetes API at {host} answers and serves {len(kinds)} core resource types.",
        api=host,
        core_resources=kinds,
    )


@check("00.2", title="Your namespace exists and is selected", timeout=10)
def namespace_ready(ctx: Context) -> CheckResult:
    """The namespace is the environment's (`lab up` creates it; on a real cluster, the workshop's RBAC
    gives it), so this step has no solution: CI expects it to PASS from the lab's starting state."""
    expected = Settings.from_env().namespace
    if ctx.namespace != expected:
        return CheckResult.failed(
            f"Your connection works in namespace {ctx.namespace!r}, but the labs use {expected!r}.",
            "`ctx.namespace` is the namespace your connection works in; LAB_NAMESPACE chooses it.",
            f"Connect again in the lab's namespace: `ctx = labkit.connect(namespace={expected!r})`.",
            selected=ctx.namespace,
            expected=expected,
        )
    try:
        namespace = ctx.core.read_namespace(expected)
    except ApiException as exc:
        if exc.status != 404:
            raise
        namespace_object = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": expected}}
        return CheckResult.failed(
            f"There is no namespace {expected!r} in the cluster: `lab up` makes it, and it has been deleted since.",
            "See which namespaces there are: `kubectl get namespaces`.",
            f"Create it again from the notebook: `labkit.apply({namespace_object!r})`.",
            selected=ctx.namespace,
        )
    phase = namespace.status.phase if namespace.status else None
    if phase != "Active":
        return CheckResult.failed(
            f"Namespace {expected!r} exists but is {phase}, not Active.",
            "A namespace that is Terminating is being deleted: wait until it is gone, then create it again.",
            phase=phase,
        )
    return CheckResult.passed(f"Namespace {expected!r} exists, is Active and is the one you work in.", phase=phase)


@dataclass(frozen=True)
class PodSighting:
    """What the checks saw of the hello pod at one moment."""

    exists: bool
    phase: str | None = None
    reader: str | None = None
    logs: str = ""
    #: Why the pod has not finished, when it has not (as `kubectl describe pod` tells it).
    trouble: Diagnosis | None = None

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES

    def evidence(self) -> dict[str, object]:
        return {"pod": POD_NAME, "phase": self.phase, "READER": self.reader, "logs": self.logs.strip()}


def look_at_hello_pod(ctx: Context) -> PodSighting:
    try:
        pod: V1Pod = ctx.core.read_namespaced_pod(POD_NAME, ctx.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return PodSighting(exists=False)
        raise
    container = pod_spec(pod).containers[0]
    reader = next((env.value for env in container.env or [] if env.name == "READER"), None)
    phase = pod.status.phase if pod.status else None
    trouble = None if phase in FINISHED_PHASES else diagnose_pod(ctx, pod, namespace_events(ctx))
    return PodSighting(True, phase, reader, _logs(ctx) if phase != "Pending" else "", trouble)


def _logs(ctx: Context) -> str:
    try:
        return str(ctx.core.read_namespaced_pod_log(POD_NAME, ctx.namespace))
    except ApiException as exc:
        # 400: the container has not started yet, so there is nothing to read.
        if exc.status in (400, 404):
            return ""
        raise


def settled(seen: PodSighting) -> bool:
    """Waiting helps only while the pod is on its way: a missing pod will not appear by itself, a pod whose
    image cannot be pulled will not start."""
    return not seen.exists or seen.finished or (seen.trouble is not None and seen.trouble.outlook is Outlook.STUCK)


def describe(seen: PodSighting) -> str:
    """What a check saw of the pod, for the attendee's live progress line."""
    if not seen.exists:
        return f"no pod {POD_NAME!r}"
    return seen.trouble.summary if seen.trouble else f"pod {POD_NAME!r} is {seen.phase}"


def _replace_pod(manifest_name: str) -> str:
    """The literal way to replace the hello pod by the one a lab manifest describes (pods are immutable)."""
    return (
        f"Pods cannot be changed in place: delete it, then apply the manifest again: `kubectl delete pod {POD_NAME}`, "
        f"then `kubectl apply --server-side -f {MANIFESTS / manifest_name}`."
    )


def _unfinished(seen: PodSighting) -> CheckResult | None:
    """The FAILED verdict shared by 00.3 and 00.4 when the pod is missing or did not finish well."""
    if not seen.exists:
        return CheckResult.failed(
            f"There is no pod named {POD_NAME!r} in your namespace.",
            f"Run the cell that applies {HELLO_POD} (`labkit.apply(hello_pod)`).",
            f"Or apply the manifest from anywhere: `kubectl apply --server-side -f {MANIFESTS / HELLO_POD}`.",
            **seen.evidence(),
        )
    if not seen.finished:
        trouble = seen.trouble
        summary = trouble.summary if trouble else f"pod {POD_NAME!r} is {seen.phase}"
        still = "" if trouble is None or trouble.outlook is Outlook.STUCK else "still "
        return CheckResult.failed(
            f"The pod {POD_NAME!r} has {still}not finished: {summary}",
            trouble.look if trouble and trouble.look else f"`kubectl describe pod {POD_NAME}` (Events at the bottom)",
            _replace_pod(HELLO_POD),
            **seen.evidence(),
        )
    if seen.phase == "Failed":
        return CheckResult.failed(
            f"The pod {POD_NAME!r} ran but failed: {seen.logs.strip()[-300:] or 'it wrote no log'}",
            f"Read its logs (`kubectl logs {POD_NAME}`) and compare its manifest with {HELLO_POD}.",
            _replace_pod(HELLO_POD),
            **seen.evidence(),
        )
    return None


@check("00.3", title="Your first pod ran and greeted you", timeout=60)
def hello_pod_greeted(ctx: Context) -> CheckResult:
    seen = observe(lambda: look_at_hello_pod(ctx), settled, what=f"pod {POD_NAME!r} to finish", describe=describe).value
    verdict = _unfinished(seen)
    if verdict:
        return verdict
    if GREETING not in seen.logs:
        return CheckResult.failed(
            f"The pod {POD_NAME!r} finished, but its logs do not say {GREETING!r}.",
            f"Its command prints the greeting: compare `kubectl get pod {POD_NAME} -o yaml` with {HELLO_POD}.",
            _replace_pod(HELLO_POD),
            **seen.evidence(),
        )
    return CheckResult.passed(f"The pod {POD_NAME!r} ran and said: {seen.logs.strip()}", **seen.evidence())


@hello_pod_greeted.solution
def run_hello_pod(ctx: Context) -> None:
    replace_hello_pod_with(ctx, HELLO_POD)


@check("00.4", title="You replaced the pod to greet you by name", timeout=60)
def hello_pod_greets_reader(ctx: Context) -> CheckResult:
    def greets_by_name(seen: PodSighting) -> bool:
        return seen.finished and bool(seen.reader) and f"{GREETING}, {seen.reader}!" in seen.logs

    seen = observe(lambda: look_at_hello_pod(ctx), settled, what=f"pod {POD_NAME!r} to finish", describe=describe).value
    verdict = _unfinished(seen)
    if verdict:
        return verdict
    if not seen.reader:
        return CheckResult.failed(
            f"The pod {POD_NAME!r} has no READER environment variable yet.",
            "Pods cannot be changed in place: delete the pod (`kubectl delete pod hello`), then apply "
            "`reader_pod`, which has your name as READER.",
            _replace_pod(HELLO_READER_POD),
            **seen.evidence(),
        )
    if not greets_by_name(seen):
        return CheckResult.failed(
            f"The pod has READER={seen.reader!r} but its logs do not greet {seen.reader}.",
            "Keep the container's command as in the manifest; only add the READER variable.",
            _replace_pod(HELLO_READER_POD),
            **seen.evidence(),
        )
    return CheckResult.passed(f"The pod greeted you by name: {seen.logs.strip()}", **seen.evidence())


@hello_pod_greets_reader.solution
def run_reader_pod(ctx: Context) -> None:
    replace_hello_pod_with(ctx, HELLO_READER_POD)


def replace_hello_pod_with(ctx: Context, manifest_name: str) -> None:
    """Delete whatever hello pod exists, then apply `manifest_name`.

    Pods are immutable, so applying over another version of the pod is refused: replacing makes each
    step's solution work from any state, and `lab solve 00` safe to run twice.
    """
    delete_hello_pod(ctx)
    apply(manifest(manifest_name), connection=ctx)


def delete_hello_pod(ctx: Context) -> None:
    """Delete the hello pod if it exists and wait until it is gone (a new one may then take its name)."""
    try:
        ctx.core.delete_namespaced_pod(POD_NAME, ctx.namespace, grace_period_seconds=0)
    except ApiException as exc:
        if exc.status != 404:
            raise
    gone = observe(lambda: look_at_hello_pod(ctx), lambda seen: not seen.exists, timeout=30)
    if not gone.reached:
        raise TimeoutError(f"pod {POD_NAME!r} was still there 30s after it was deleted")


def reset(ctx: Context) -> None:
    """Lab 00 leaves only the hello pod behind; the namespace belongs to the environment."""
    delete_hello_pod(ctx)
