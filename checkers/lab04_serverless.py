"""Lab 04, serverless: the storefront as a Knative Service that starts on demand and scales with the load.

The attendee deploys stock and balance as in lab 02 and the storefront as a Knative Service
(infra/overlays/04-serverless), gives it the lab's autoscaling (a 6 s stable window, so it goes to
zero within a minute; a target of 2 requests per pod), times a cold start, deploys v2 beside v1 and
splits the traffic, tags v1 to reach it on its own URL, drives load to watch pods come and go, and
repairs a release that never reaches its visitors. The lesson manifests are the overlay's
`service-storefront-*.yaml`, one per step.

The checks read the Knative objects (conditions, revisions, traffic) as `kubectl get ksvc,revision`
shows them, the Deployments' scaling events (what `kubectl describe deployment` lists), and live
answers: a burst through the service URL counted by `x-bookstore-version`, with binomial tolerances.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from kubernetes.client.exceptions import ApiException

from checkers._api import read_or_none
from checkers._context import Context
from checkers._lessons import apply_command, load_lesson
from checkers._registry import check
from checkers._result import CheckResult
from checkers._runner import observe
from checkers.diagnosis import await_workload
from checkers.lab01_monolith import delete_lab_objects
from checkers.lab05_mesh import within_binomial
from labkit._apply import apply
from labkit._waiting import wait_for
from labkit.admin import ensure_admin_secret
from labkit.kustomize import overlay

LAB_ID = "04-serverless"
SERVICE = "storefront"
SERVING = ("serving.knative.dev", "v1")
VERSION_HEADER = "x-bookstore-version"
WINDOW = "autoscaling.knative.dev/window"
#: The scale bounds, as Knative reads them: the current key first, then the older camelCase one.
MIN_SCALE = ("autoscaling.knative.dev/min-scale", "autoscaling.knative.dev/minScale")
MAX_SCALE = ("autoscaling.knative.dev/max-scale", "autoscaling.knative.dev/maxScale")
#: The longest stable window this lab accepts: longer, and waiting for zero takes minutes.
WINDOW_LIMIT = 10.0
#: The lesson files, by step.
AUTOSCALING = "service-storefront-autoscaling.yaml"
SPLIT = "service-storefront-v2-50-50.yaml"
TAGGED = "service-storefront-v2-90-10-tagged.yaml"
V3 = "service-storefront-v3.yaml"
#: Requests in a split burst: enough that a 4-sigma binomial band is a few points wide.
BURST = 200
#: The fix-it challenge's release: v3 with a ranking module the storefront does not have.
CHALLENGE_RANKING = "by-popularity"


def lesson(name: str) -> list[dict[str, Any]]:
    """The objects of one lesson file of the lab (e.g. service-storefront-v2-50-50.yaml)."""
    return load_lesson(LAB_ID, name)


def _hint_apply(name: str | None) -> str:
    """The step's manifest put back (the lab's overlay for None), as kubectl runs it and as the notebook does."""
    notebook = f"labkit.apply(lesson({name!r}))" if name else f'labkit.apply(overlay("{LAB_ID}"))'
    return f"{apply_command(LAB_ID, name)}   (in the notebook: {notebook})"


# --- What the Knative objects say --------------------------------------------------------------------


def _conditions(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def _seconds(duration: str | None) -> float | None:
    """A Go duration of the simple kinds annotations use (`6s`, `1m`, `1m30s`)."""
    if not duration:
        return None
    total, number = 0.0, ""
    for char in duration:
        if char.isdigit() or char == ".":
            number += char
        elif char in "hms" and number:
            total += float(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
        else:
            return None
    return total if not number else None


def _scale_bound(annotations: Mapping[str, str], keys: tuple[str, ...]) -> tuple[str, int] | None:
    """(annotation key, value) of a scale bound the revision sets (Knative's webhook made sure it is a number)."""
    for key in keys:
        if key in annotations:
            return key, int(annotations[key])
    return None


def _patch_template(op: str, annotation: str, value: str | None = None) -> str:
    """A hint's code span changing one annotation of the Service's revision template (a new revision follows).

    A JSON patch, so it works whoever set the annotation (kubectl, the notebook's labkit.apply).
    """
    path = "/spec/template/metadata/annotations/" + annotation.replace("~", "~0").replace("/", "~1")
    change = {"op": op, "path": path} if value is None else {"op": op, "path": path, "value": value}
    return f"`kubectl patch ksvc {SERVICE} --type=json -p '{json.dumps([change])}'`"


@dataclass(frozen=True)
class RevisionState:
    """One Revision of the storefront as `kubectl get revision` shows it, and what its pods run."""

    name: str
    generation: str
    version: str
    conditions: dict[str, dict[str, Any]]
    actual: int | None
    desired: int | None
    window: float
    min_scale: tuple[str, int] | None = None
    max_scale: tuple[str, int] | None = None

    @property
    def ready(self) -> bool:
        return self.conditions.get("Ready", {}).get("status") == "True"

    def condition_text(self, kind: str = "Ready") -> str:
        found = self.conditions.get(kind, {})
        reason, message = found.get("reason", ""), found.get("message", "")
        return f"{reason}: {message}" if message else reason or found.get("status", "Unknown")

    def evidence(self) -> dict[str, object]:
        return {
            "revision": self.name,
            "version": self.version,
            "ready": self.conditions.get("Ready", {}).get("status"),
            "reason": self.condition_text(),
            "active": self.condition_text("Active"),
            "actual replicas": self.actual,
            "desired replicas": self.desired,
            "stable window (s)": self.window,
            "scale bounds": dict(bound for bound in (self.min_scale, self.max_scale) if bound),
        }


@dataclass(frozen=True)
class ServingState:
    """The storefront's Knative Service: its conditions, URL, traffic and revisions."""

    exists: bool
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)
    observed: bool = False
    url: str = ""
    latest_created: str = ""
    latest_ready: str = ""
    traffic: tuple[dict[str, Any], ...] = ()
    revisions: dict[str, RevisionState] = field(default_factory=dict)

    @property
    def ready(self) -> str:
        """True, False or Unknown, as the READY column (Unknown too while a new generation is not seen)."""
        return self.conditions.get("Ready", {}).get("status", "Unknown") if self.observed else "Unknown"

    def condition_text(self, kind: str = "Ready") -> str:
        found = self.conditions.get(kind, {})
        reason, message = found.get("reason", ""), found.get("message", "")
        return f"{reason}: {message}" if message else reason or "no reason given yet"

    @property
    def serving(self) -> RevisionState | None:
        return self.revisions.get(self.latest_ready)

    @property
    def ready_revision(self) -> RevisionState:
        """The revision a Ready Service serves (a Ready Service has its latestReadyRevisionName)."""
        return self.revisions[self.latest_ready]

    def shares(self) -> dict[str, int]:
        """Percent of the URL's traffic per revision, as status.traffic says."""
        shares: dict[str, int] = {}
        for target in self.traffic:
            name = target.get("revisionName", "")
            shares[name] = shares.get(name, 0) + int(target.get("percent") or 0)
        return {name: percent for name, percent in shares.items() if percent}

    def evidence(self) -> dict[str, object]:
        return {
            "ksvc": SERVICE,
            "ready": self.ready,
            "reason": self.condition_text() if self.ready != "True" else "",
            "url": self.url,
            "latest created": self.latest_created,
            "latest ready": self.latest_ready,
            "traffic": [dict(t) for t in self.traffic],
            "revisions": [revision.evidence() for revision in self.revisions.values()],
        }


def look_at_storefront(ctx: Context) -> ServingState:
    group, version = SERVING
    try:
        service: dict[str, Any] = ctx.custom.get_namespaced_custom_object(  # type: ignore[assignment]
            group, version, ctx.namespace, "services", SERVICE
        )
    except ApiException as exc:
        if exc.status == 404:
            return ServingState(exists=False)
        raise
    listed: dict[str, Any] = ctx.custom.list_namespaced_custom_object(  # type: ignore[assignment]
        group, version, ctx.namespace, "revisions", label_selector=f"serving.knative.dev/service={SERVICE}"
    )
    revisions = {}
    for revision in sorted(listed["items"], key=lambda r: r["metadata"]["name"]):
        spec = revision.get("spec") or {}
        env = {e.get("name"): e.get("value") for e in (spec.get("containers") or [{}])[0].get("env") or []}
        status = revision.get("status") or {}
        annotations = revision["metadata"].get("annotations") or {}
        revisions[revision["metadata"]["name"]] = RevisionState(
            name=revision["metadata"]["name"],
            generation=(revision["metadata"].get("labels") or {}).get(
                "serving.knative.dev/configurationGeneration", ""
            ),
            version=env.get("BOOKSTORE_VERSION") or "v1",
            conditions=_conditions(revision),
            actual=status.get("actualReplicas"),
            desired=status.get("desiredReplicas"),
            window=_seconds(annotations.get(WINDOW)) or 60.0,
            min_scale=_scale_bound(annotations, MIN_SCALE),
            max_scale=_scale_bound(annotations, MAX_SCALE),
        )
    status = service.get("status") or {}
    return ServingState(
        exists=True,
        conditions=_conditions(service),
        observed=status.get("observedGeneration") == service["metadata"].get("generation"),
        url=status.get("url", ""),
        latest_created=status.get("latestCreatedRevisionName", ""),
        latest_ready=status.get("latestReadyRevisionName", ""),
        traffic=tuple(status.get("traffic") or ()),
        revisions=revisions,
    )


def _settled(state: ServingState) -> bool:
    """Whether waiting is over: no Service, Ready decided, and the latest revision settled too."""
    if not state.exists or state.ready == "False":
        return True
    return state.ready == "True" and state.latest_created == state.latest_ready


def await_storefront(ctx: Context, timeout: float | None = None) -> ServingState:
    return observe(
        lambda: look_at_storefront(ctx),
        _settled,
        timeout=timeout,
        what="the Knative Service storefront to be Ready",
        describe=lambda state: f"Ready {state.ready} ({state.condition_text()})" if state.exists else "not created",
    ).value


def serving_problem(state: ServingState, step: str | None) -> CheckResult | None:
    """Why the storefront's Knative Service does not serve, as `kubectl describe ksvc` shows it; None if it does.

    `step` is the lesson file the check's step applies (None: the lab's overlay), put back by the fix.
    """
    if not state.exists:
        return CheckResult.failed(
            "There is no Knative Service storefront in your namespace.",
            "Where to look: kubectl get ksvc",
            f"Apply the lab's manifests: {_hint_apply(None)}",
        )
    if state.ready == "True":
        return None
    cause = state.condition_text()
    failing = state.revisions.get(state.latest_created)
    look = "kubectl describe ksvc storefront"
    if failing is not None and failing.conditions.get("Ready", {}).get("status") == "False":
        cause = f"revision {failing.name} failed: {failing.condition_text()}"
        look = f"kubectl describe revision {failing.name}   and   kubectl logs deployment/{failing.name}-deployment"
    if "placeholder Service" in cause:
        return CheckResult.failed(
            f"The Knative Service storefront is not Ready: {cause}",
            "Where to look: kubectl get services,deployments storefront -o wide",
            "Lab 02's storefront Deployment and Service still hold the name the Knative Service needs: "
            "`kubectl delete deployment,service storefront`",
            **state.evidence(),
        )
    return CheckResult.failed(
        f"The Knative Service storefront is not Ready ({state.ready}): {cause}",
        f"Where to look: {look}",
        f"Put back this step's manifest (its template and traffic work): {_hint_apply(step)}",
        **state.evidence(),
    )


def serving_storefront(ctx: Context, step: str | None) -> ServingState | CheckResult:
    """The storefront once its Knative Service has settled; or, when it does not serve, the FAILED verdict why."""
    state = await_storefront(ctx)
    return serving_problem(state, step) or state


# --- The Deployments' scaling events -------------------------------------------------------------------


@dataclass(frozen=True)
class Scaling:
    """One `ScalingReplicaSet` event of a revision's Deployment (repeats folded into `count`)."""

    revision: str
    message: str
    count: int
    first: str
    last: str

    @property
    def change(self) -> tuple[int, int] | None:
        """(from, to) replicas of a `Scaled up/down replica set X from A to B`."""
        words = self.message.split()
        try:
            return int(words[-3]), int(words[-1])
        except (ValueError, IndexError):
            return None


def scaling_events(ctx: Context, revisions: Mapping[str, RevisionState]) -> list[Scaling]:
    events = ctx.core.list_namespaced_event(ctx.namespace).items
    deployments = {f"{name}-deployment": name for name in revisions}
    found = []
    for event in events:
        revision = deployments.get(event.involved_object.name or "")
        if revision is None or event.reason != "ScalingReplicaSet":
            continue
        first = event.first_timestamp.isoformat() if event.first_timestamp else ""
        last = event.last_timestamp.isoformat() if event.last_timestamp else first
        found.append(Scaling(revision, event.message or "", event.count or 1, first, last))
    return sorted(found, key=lambda e: e.last)


@dataclass(frozen=True)
class ScalingHistory:
    """The storefront's Knative Service and the scaling events of its revisions' Deployments."""

    state: ServingState
    events: list[Scaling]

    def changes(self, wanted: Callable[[Scaling, int, int], bool]) -> list[Scaling]:
        """The events that scaled a revision from `old` to `new` replicas as `wanted(event, old, new)` says."""
        return [e for e in self.events if e.change is not None and wanted(e, *e.change)]

    def evidence(self) -> dict[str, object]:
        return {**self.state.evidence(), "scaling": [e.message for e in self.events]}


def scaling_history(ctx: Context, step: str | None) -> ScalingHistory | CheckResult:
    """The storefront's scaling so far; or, when it does not serve, the FAILED verdict saying why."""
    state = serving_storefront(ctx, step)
    return state if isinstance(state, CheckResult) else ScalingHistory(state, scaling_events(ctx, state.revisions))


# --- Live answers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    statuses: Counter[int]
    versions: Counter[str]

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)


def burst(ctx: Context, url: str, count: int, *, parallel: int = 1) -> Burst:
    """`count` GETs of the storefront's books at `url`, `parallel` at a time, counted by status and version.

    One at a time by default: a request in flight is under the target of 2 per pod, so counting answers
    never scales the storefront out (step 6's load must be what does).
    """

    def one(_: int) -> tuple[int, str]:
        try:
            answer = ctx.http.get(f"{url}/api/books")
        except httpx.TimeoutException:
            return 0, ""
        return answer.status_code, answer.headers.get(VERSION_HEADER, "")

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        results = list(pool.map(one, range(count)))
    return Burst(Counter(s for s, _ in results), Counter(v for s, v in results if 200 <= s < 300))


@dataclass
class RequestLoad:
    """GETs of the storefront's books from `concurrency` threads until stopped: the lab's load.

    `in_flight` is how many requests are waiting for an answer right now (what Knative's autoscaler
    measures as concurrency); `answered` counts answers by status.
    """

    http: httpx.Client
    url: str
    concurrency: int = 8
    #: Seconds one request may take: a load must stop soon when asked, whatever the storefront does.
    request_timeout: float = 10.0
    in_flight: int = 0
    answered: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> RequestLoad:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._run, name=f"request-load-{i}", daemon=True) for i in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Counter[str]:
        """Stop asking; returns once every thread has had its last answer (or its request timed out)."""
        self._stop.set()
        deadline = time.monotonic() + self.request_timeout + 1
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.answered

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.in_flight += 1
            try:
                outcome = str(self.http.get(f"{self.url}/api/books", timeout=self.request_timeout).status_code)
            except httpx.HTTPError:
                outcome = "lost"
            with self._lock:
                self.in_flight -= 1
                self.answered[outcome] += 1


def _wait_until(
    ctx: Context, condition: Callable[[ServingState], bool], what: str, timeout: float = 180
) -> ServingState:
    def settled() -> ServingState | None:
        state = look_at_storefront(ctx)
        return state if condition(state) else None

    found = wait_for(settled, what=what, timeout=timeout)
    assert found is not None
    return found


def _solve_with_lesson(
    ctx: Context, name: str, *, done: Callable[[ServingState], bool], until: Callable[[ServingState], bool], what: str
) -> None:
    """A step's solution: unless `done` says it was done before, apply its lesson file and wait for `until`."""
    if done(look_at_storefront(ctx)):
        return
    apply(lesson(name), connection=ctx)
    _wait_until(ctx, until, what)


# --- 04.1: the storefront as a Knative Service ---------------------------------------------------------


@check("04.1", title="stock and balance run, and the storefront is a Knative Service that is Ready", timeout=150)
def storefront_is_serverless(ctx: Context) -> CheckResult:
    dependencies = await_workload(ctx, "stock", "balance")
    if not dependencies.ready:
        return dependencies.failed()
    state = serving_storefront(ctx, None)
    if isinstance(state, CheckResult):
        return state
    return CheckResult.passed(
        f"The Knative Service storefront is Ready at {state.url}: revision {state.ready_revision.name} serves all "
        "its traffic.",
        **state.evidence(),
    )


@storefront_is_serverless.solution
def deploy_serverless_storefront(ctx: Context) -> None:
    ensure_admin_secret(ctx)
    remove_lab02_storefront(ctx)
    # Each step's solution leaves later steps' work alone: applied again, the first manifest would
    # take the storefront back to its first template (a new revision).
    exists = look_at_storefront(ctx).exists
    apply(
        [obj for obj in overlay(LAB_ID) if not (exists and obj["kind"] == "Service" and "template" in obj["spec"])],
        connection=ctx,
    )
    _wait_until(ctx, lambda s: s.ready == "True", "the Knative Service storefront to be Ready")


def remove_lab02_storefront(ctx: Context) -> list[str]:
    """Lab 02's storefront Deployment and Service hold the name the Knative Service's Route needs.

    Returns the kinds removed ("deployment", "service"), so the notebook can say what it did.
    """
    removed = []
    if read_or_none(lambda: ctx.apps.delete_namespaced_deployment(SERVICE, ctx.namespace)) is not None:
        removed.append("deployment")
    service = read_or_none(lambda: ctx.core.read_namespaced_service(SERVICE, ctx.namespace))
    if service is not None and service.metadata is not None and not service.metadata.owner_references:
        ctx.core.delete_namespaced_service(SERVICE, ctx.namespace)  # lab 02's, not the Route's placeholder
        removed.append("service")
    return removed


# --- 04.2: at zero when idle ---------------------------------------------------------------------------


@check("04.2", title="The idle storefront went to zero pods, and stayed Ready", timeout=120)
def idle_at_zero(ctx: Context) -> CheckResult:
    state = serving_storefront(ctx, AUTOSCALING)
    if isinstance(state, CheckResult):
        return state
    serving = state.ready_revision
    if serving.window > WINDOW_LIMIT:
        return CheckResult.failed(
            f"Revision {serving.name} keeps its pods for its stable window of {serving.window:g} s after the last "
            "request, and Knative adds its scale-to-zero grace period: waiting for zero would take minutes.",
            f"Where to look: kubectl get revision {serving.name} -o jsonpath='{{.metadata.annotations}}'",
            "Autoscaling annotations go on the revision template, spec.template.metadata.annotations "
            f"(annotations of the Service itself are refused): {_hint_apply(AUTOSCALING)}",
            **state.evidence(),
        )
    if serving.min_scale is not None and serving.min_scale[1] > 0:
        key, pods = serving.min_scale
        return CheckResult.failed(
            f'Revision {serving.name} has {key}: "{pods}": Knative keeps at least {pods} pod(s) of it however idle '
            "it is, so it never goes to zero.",
            f"Where to look: kubectl get revision {serving.name} -o jsonpath='{{.metadata.annotations}}'",
            "Take min-scale out of the Service's template (its new revision then goes to zero when idle): "
            + _patch_template("remove", key),
            **state.evidence(),
        )
    seen = observe(
        lambda: look_at_storefront(ctx),
        lambda s: (r := s.serving) is not None and r.actual == 0,
        what=f"revision {serving.name} to scale to zero",
        describe=lambda s: f"{s.serving.actual if s.serving else '?'} pod(s)",
    ).value
    now_serving = seen.serving
    if now_serving is None or now_serving.actual != 0:
        return CheckResult.failed(
            f"Revision {serving.name} still has {now_serving.actual if now_serving else '?'} pod(s): requests keep "
            "coming, or it has not been idle for its window and the grace period yet.",
            f"Where to look: kubectl get revision {serving.name} -w   (Active says why)",
            "Stop sending requests to the storefront (any load still running) and check again after a minute.",
            **seen.evidence(),
        )
    return CheckResult.passed(
        f"Revision {now_serving.name} is at zero pods ({now_serving.condition_text('Active')}), and still Ready: "
        "the next request starts it.",
        **seen.evidence(),
    )


@idle_at_zero.solution
def give_lab_autoscaling(ctx: Context) -> None:
    _solve_with_lesson(
        ctx,
        AUTOSCALING,
        done=lambda s: (r := s.revisions.get(s.latest_created)) is not None and r.window <= WINDOW_LIMIT,
        until=lambda s: (
            s.ready == "True" and (r := s.serving) is not None and r.window <= WINDOW_LIMIT and r.actual == 0
        ),
        what="the storefront's new revision to be Ready and at zero",
    )


# --- 04.3: a cold start ----------------------------------------------------------------------------------


@check("04.3", title="A request at zero was answered: Knative started a pod for it", timeout=30)
def answered_from_zero(ctx: Context) -> CheckResult:
    """A revision's Deployment is scaled up from 0 when it is created; a second time (the event's count) means
    from idle, for a request."""
    history = scaling_history(ctx, AUTOSCALING)
    if isinstance(history, CheckResult):
        return history
    woken = history.changes(lambda e, old, new: old == 0 and new > 0 and e.count >= 2)
    if not woken:
        state = history.state
        serving = state.serving
        name = serving.name if serving else "<the newest revision>"
        return CheckResult.failed(
            "No revision of the storefront has been started from zero by a request yet.",
            f"Where to look: kubectl describe deployment {name}-deployment (its events)",
            f"Wait until the storefront is at zero (step 2), then send it one request: `kubectl wait "
            f"revision/{name} --for=jsonpath='{{.status.actualReplicas}}'=0 --timeout=90s`, then "
            f'`ctx.http.get("{state.url}/api/books")`',
            **history.evidence(),
        )
    last = woken[-1]
    return CheckResult.passed(
        f"Revision {last.revision} was started from zero for a request ({last.message}, last at {last.last}).",
        **history.evidence(),
    )


@answered_from_zero.solution
def request_at_zero(ctx: Context) -> None:
    if answered_from_zero(ctx).ok:
        return  # done before
    state = _wait_until(ctx, lambda s: (r := s.serving) is not None and r.actual == 0, "the storefront to be at zero")
    ctx.http.get(f"{state.url}/api/books").raise_for_status()


# --- 04.4: two revisions, one URL ----------------------------------------------------------------------


@check("04.4", title="Live answers split between two revisions as the Service's traffic says", timeout=150)
def split_as_declared(ctx: Context) -> CheckResult:
    state = serving_storefront(ctx, SPLIT)
    if isinstance(state, CheckResult):
        return state
    shares = state.shares()
    if len(shares) < 2:
        return CheckResult.failed(
            f"All of the storefront's traffic goes to {', '.join(shares) or 'no revision'}: there is nothing to split.",
            "Where to look: kubectl get ksvc storefront -o jsonpath='{.status.traffic}'",
            f"Deploy v2 and give each revision half of the traffic: {_hint_apply(SPLIT)}",
            **state.evidence(),
        )
    versions = {name: state.revisions[name].version for name in shares if name in state.revisions}
    if len(set(versions.values())) < len(versions):
        return CheckResult.failed(
            f"The revisions that share the traffic answer with the same version ({versions}): answers cannot be "
            "told apart.",
            "Where to look: kubectl get revisions -L version",
            "Give the new revision BOOKSTORE_VERSION v2 (and the label version: v2), as the lesson file does: "
            + _hint_apply(SPLIT),
            **state.evidence(),
        )
    seen = burst(ctx, state.url, BURST)
    counts = {name: seen.versions.get(version, 0) for name, version in versions.items()}
    evidence = {**state.evidence(), "answers by status": dict(seen.statuses), "answers by revision": counts}
    if seen.ok < 0.9 * BURST:
        return CheckResult.failed(
            f"Only {seen.ok} of {BURST} requests to {state.url} were answered (statuses {dict(seen.statuses)}).",
            "Where to look: kubectl get revisions   and   kubectl describe ksvc storefront",
            f"Every revision that has a share of the traffic must answer: {_hint_apply(SPLIT)}",
            **evidence,
        )
    off = {
        name: (counts[name], percent)
        for name, percent in shares.items()
        if not within_binomial(counts[name], seen.ok, percent)
    }
    if off:
        told = "; ".join(
            f"{name}: {hits} of {seen.ok} answers for {percent} %" for name, (hits, percent) in off.items()
        )
        return CheckResult.failed(
            f"The answers do not follow the declared split: {told}.",
            "Where to look: kubectl get ksvc storefront -o jsonpath='{.status.traffic}'",
            "Wait until the Service is Ready with its new traffic, then check again.",
            **evidence,
        )
    told = ", ".join(f"{name} ({versions[name]}) {counts[name]}/{seen.ok} for {shares[name]} %" for name in shares)
    return CheckResult.passed(f"{BURST} answers from {state.url}: {told}, within chance of the split.", **evidence)


@split_as_declared.solution
def split_v1_v2(ctx: Context) -> None:
    _solve_with_lesson(
        ctx,
        SPLIT,
        done=lambda s: len(s.shares()) >= 2,
        until=lambda s: s.ready == "True" and len(s.shares()) == 2 and s.latest_created == s.latest_ready,
        what="the storefront to split its traffic between v1 and v2",
    )


# --- 04.5: a tag ------------------------------------------------------------------------------------


@check("04.5", title="A tagged revision answers on its own URL", timeout=60)
def tag_answers(ctx: Context) -> CheckResult:
    state = serving_storefront(ctx, TAGGED)
    if isinstance(state, CheckResult):
        return state
    tagged = [t for t in state.traffic if t.get("tag")]
    if not tagged:
        return CheckResult.failed(
            "No revision of the storefront has a tag, so none has a URL of its own.",
            "Where to look: kubectl get ksvc storefront -o jsonpath='{.status.traffic}'",
            f"Tag v1 (and move the rest of the traffic on to v2): {_hint_apply(TAGGED)}",
            **state.evidence(),
        )
    told = []
    for target in tagged:
        revision = state.revisions.get(target.get("revisionName", ""))
        versions = Counter(
            ctx.http.get(f"{target['url']}/api/books").headers.get(VERSION_HEADER, "?") for _ in range(5)
        )
        expected = revision.version if revision else "?"
        if set(versions) != {expected}:
            return CheckResult.failed(
                f"Tag {target['tag']} names {target.get('revisionName')} ({expected}), but {target['url']} answered "
                f"{dict(versions)}.",
                f"Where to look: kubectl get revision {target.get('revisionName')}",
                f"Tag v1 as the lesson file does: {_hint_apply(TAGGED)}",
                **state.evidence(),
            )
        told.append(f"{target['url']} → {target.get('revisionName')} ({expected}) 5/5")
    return CheckResult.passed(
        "Tagged URLs answer from their own revision: " + "; ".join(told) + ".", **state.evidence()
    )


@tag_answers.solution
def tag_v1(ctx: Context) -> None:
    _solve_with_lesson(
        ctx,
        TAGGED,
        done=lambda s: any(target.get("tag") for target in s.traffic),
        until=lambda s: s.ready == "True" and any(t.get("tag") and t.get("url") for t in s.traffic),
        what="the storefront's tagged URL",
    )


# --- 04.6: scaling out --------------------------------------------------------------------------------


@check("04.6", title="Under load, the storefront scaled out to more pods", timeout=30)
def scaled_out(ctx: Context) -> CheckResult:
    """Some revision's Deployment went up to two pods or more; if none did, whether its max-scale allows it."""
    history = scaling_history(ctx, TAGGED)
    if isinstance(history, CheckResult):
        return history
    out = history.changes(lambda _e, old, new: new >= 2 and new > old)
    if out:
        peak = max(out, key=lambda e: e.change[1] if e.change else 0)
        return CheckResult.passed(
            f"Under load, revision {peak.revision} scaled out: {peak.message}.", **history.evidence()
        )
    serving = history.state.serving
    if serving is not None and serving.max_scale is not None and serving.max_scale[1] == 1:
        key, _pods = serving.max_scale
        return CheckResult.failed(
            f'Revision {serving.name} has {key}: "1": Knative never gives it a second pod, whatever the load.',
            f"Where to look: kubectl get revision {serving.name} -o jsonpath='{{.metadata.annotations}}'",
            "Let it scale out to the lab's 4 pods (a new revision), then drive load again: "
            + _patch_template("replace", key, "4"),
            **history.evidence(),
        )
    return CheckResult.failed(
        "No revision of the storefront ever had more than one pod: it has not been under enough load.",
        "Where to look: kubectl get revisions -w   while the load runs",
        "Drive load for 15 s, as the notebook's chart cell does: "
        "`labkit.scaling_chart.watch_scaling(load_seconds=15, calm_seconds=0)`",
        **history.evidence(),
    )


@scaled_out.solution
def drive_load(ctx: Context) -> None:
    if scaled_out(ctx).ok:
        return  # done before
    state = look_at_storefront(ctx)
    load = RequestLoad(ctx.http, state.url, concurrency=8).start()
    try:
        wait_for(
            lambda: (r := look_at_storefront(ctx).serving) is not None and (r.actual or 0) >= 2,
            what="the storefront to scale out under load",
            timeout=120,
        )
    finally:
        load.stop()


# --- 04.7: the fix-it challenge -----------------------------------------------------------------------


def challenge_release() -> dict[str, Any]:
    """The lesson's v3 (90 % to the latest revision), with a ranking module the storefront does not have."""
    (release,) = lesson(V3)
    container = release["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "BOOKSTORE_RANKING", "value": CHALLENGE_RANKING})
    return release


def start_challenge(ctx: Context) -> None:
    """Release v3 as the challenge describes (the notebook calls this; the cause stays hidden)."""
    apply(challenge_release(), connection=ctx)


@check("04.7", title="Challenge: v3 reaches the visitors", timeout=120)
def v3_serves(ctx: Context) -> CheckResult:
    state = await_storefront(ctx)
    if not state.exists:
        return serving_problem(state, V3) or CheckResult.failed("There is no storefront.", "kubectl get ksvc")
    latest = state.revisions.get(state.latest_created)
    share = state.shares().get(state.latest_ready, 0)
    seen = burst(ctx, state.url, 50)
    answered = seen.versions.get("v3", 0)
    evidence = {**state.evidence(), "answers by version": dict(seen.versions)}
    if state.ready != "True" or latest is None or latest.version != "v3" or not share or not answered:
        return CheckResult.failed(
            f"Visitors do not get v3: 50 requests were answered {dict(seen.versions) or dict(seen.statuses)}.",
            "Where to look: kubectl get ksvc,revisions",
            f"Then: kubectl describe revision {state.latest_created or '<the newest one>'}",
            f"Release v3 with a template that works: {_hint_apply(V3)}",
            **evidence,
        )
    if not within_binomial(answered, seen.ok, share):
        return CheckResult.failed(
            f"v3 ({latest.name}) has {share} % of the traffic but answered {answered} of {seen.ok} requests.",
            "Where to look: kubectl get ksvc storefront -o jsonpath='{.status.traffic}'",
            "Wait until the Service is Ready with its new traffic, then check again.",
            **evidence,
        )
    return CheckResult.passed(
        f"v3 ({latest.name}) serves its {share} % of the visitors: {answered} of {seen.ok} answers.", **evidence
    )


@v3_serves.solution
def release_v3(ctx: Context) -> None:
    _solve_with_lesson(ctx, V3, done=_v3_serves, until=_v3_serves, what="v3 to serve its share of the visitors")


def _v3_serves(state: ServingState) -> bool:
    return state.ready == "True" and (r := state.serving) is not None and r.version == "v3" and r.name in state.shares()


def reset(ctx: Context) -> None:
    """Remove the Knative Service (Knative removes its revisions, pods, Services), stock, balance, their claims."""
    group, version = SERVING
    try:
        ctx.custom.delete_namespaced_custom_object(group, version, ctx.namespace, "services", SERVICE)
    except ApiException as exc:
        if exc.status != 404:
            raise
    gone = observe(
        lambda: (
            ctx.core.list_namespaced_pod(ctx.namespace, label_selector=f"serving.knative.dev/service={SERVICE}").items
        ),
        lambda pods: not pods,
        timeout=60,
    )
    if not gone.reached:
        raise TimeoutError("the storefront's pods were still there 60s after its Knative Service was deleted")
    delete_lab_objects(ctx, LAB_ID)
