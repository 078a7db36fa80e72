"""Lab 05, service mesh: gray release, header canary, faults, retries and timeouts, authorization.

The attendee puts the bookstore in the mesh (each service under its own ServiceAccount), deploys
storefront v2 beside v1 and routes visitors, who come in through the ingress gateway, 100/0, then
90/10, then by header, injects faults on the storefront's calls to stock, makes the edge resilient
with a timeout and retries, locks stock and balance to the storefront's identity, and finishes the
release with v2 at 100 %. The lesson manifests are infra/overlays/05-mesh/*.yaml, one per step.

Every check looks at the objects and then at live requests: a burst through the gateway counted by
the `x-bookstore-version` each answer carries, with binomial tolerances for weights, and the
sidecars' Istio metrics (labkit.mesh.scrape) for what happens inside the mesh (faults, retries).
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
from kubernetes.client import V1ConfigMap, V1ObjectMeta
from kubernetes.client.exceptions import ApiException

from checkers._context import Context
from checkers._registry import check
from checkers._result import CheckResult
from checkers._runner import observe
from checkers.lab01_monolith import delete_lab_objects
from labkit._apply import apply, load_manifests
from labkit._waiting import wait_for
from labkit.admin import ensure_admin_secret
from labkit.kustomize import overlay, overlay_path
from labkit.mesh import Sample, requests_by, scrape, through_gateway

LAB_ID = "05-mesh"
SERVICES = ("storefront", "stock", "balance")
VERSION_HEADER = "x-bookstore-version"
TESTER = {"end-user": "tester"}
NETWORKING = ("networking.istio.io", "v1")
SECURITY = ("security.istio.io", "v1")
KNATIVE_SERVICES = ("serving.knative.dev", "v1", "services")
INJECTION_LABEL = "istio-injection"
SIDECAR_STATUS = "sidecar.istio.io/status"
RBAC_DENIED = "RBAC: access denied"
#: The fix-it challenge: the lab's change, and the marker that says the challenge was started.
CHALLENGE = "lab05-challenge"
LESSON_DIR = f"infra/overlays/{LAB_ID}"
#: The share of visitors that must get an answer for a burst to say anything: with the lab's faults in
#: place and the retries of step 6, about 9 in 10 do; 7 in 10 keeps chance far from a false FAILED.
ENOUGH_ANSWERS = 0.7


def lesson(name: str) -> list[dict[str, Any]]:
    """The objects of one lesson file of the lab (e.g. virtual-service-storefront-90-10.yaml)."""
    return load_manifests(overlay_path(LAB_ID) / name)


def apply_lesson(ctx: Context, name: str) -> None:
    apply(lesson(name), connection=ctx)


def _hint_apply(name: str) -> str:
    return f"kubectl apply -f {LESSON_DIR}/{name}   (in the notebook: labkit.apply(lesson({name!r})))"


# --- Reading Istio objects ---------------------------------------------------------------------


def read_istio(ctx: Context, kind: str, name: str) -> dict[str, Any] | None:
    """An Istio object of the namespace, or None if there is none by that name."""
    group, version = SECURITY if kind == "AuthorizationPolicy" else NETWORKING
    plural = "authorizationpolicies" if kind == "AuthorizationPolicy" else f"{kind.lower()}s"
    try:
        found = ctx.custom.get_namespaced_custom_object(group, version, ctx.namespace, plural, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return dict(found)  # type: ignore[call-overload]


def delete_istio(ctx: Context, kind: str, name: str) -> None:
    group, version = SECURITY if kind == "AuthorizationPolicy" else NETWORKING
    plural = "authorizationpolicies" if kind == "AuthorizationPolicy" else f"{kind.lower()}s"
    try:
        ctx.custom.delete_namespaced_custom_object(group, version, ctx.namespace, plural, name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def default_weights(virtual_service: Mapping[str, Any]) -> dict[str, int]:
    """Percent per subset of the rule that takes everyone (the first rule without a match)."""
    for rule in (virtual_service.get("spec") or {}).get("http") or []:
        if rule.get("match"):
            continue
        routes = rule.get("route") or []
        if len(routes) == 1:
            return {routes[0]["destination"].get("subset", ""): 100}
        total = sum(int(r.get("weight") or 0) for r in routes) or 1
        return {r["destination"].get("subset", ""): round(100 * int(r.get("weight") or 0) / total) for r in routes}
    return {}


def _tester_rule(virtual_service: Mapping[str, Any]) -> dict[str, Any] | None:
    for rule in (virtual_service.get("spec") or {}).get("http") or []:
        for match in rule.get("match") or []:
            if ((match.get("headers") or {}).get("end-user") or {}).get("exact") == TESTER["end-user"]:
                return rule
    return None


# --- Live requests through the gateway ---------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    """What a burst of visitors' requests through the gateway got back."""

    statuses: Counter[int]
    versions: Counter[str]
    latencies: tuple[float, ...]
    bodies: tuple[str, ...] = field(default=(), repr=False)

    @property
    def count(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0

    def evidence(self) -> dict[str, object]:
        return {
            "requests": self.count,
            "statuses": dict(sorted(self.statuses.items())),
            "versions served": dict(sorted(self.versions.items())),
            "p50 / p90 latency (s)": f"{self.percentile(0.5):.2f} / {self.percentile(0.9):.2f}",
            "first error bodies": [body for body in self.bodies if body][:3],
        }


def burst(
    ctx: Context,
    count: int,
    *,
    method: str = "GET",
    path: str = "/api/books",
    headers: Mapping[str, str] | None = None,
    parallel: int = 8,
) -> Burst:
    """`count` requests through the ingress gateway to the storefront, `parallel` at a time."""

    def one(_: int) -> tuple[int, str, float, str]:
        started = time.monotonic()
        try:
            answer = through_gateway(method, path, headers=headers, connection=ctx)
        except httpx.TimeoutException:
            return 0, "", time.monotonic() - started, "no answer in time"
        elapsed = time.monotonic() - started
        body = "" if answer.is_success else answer.text[:200]
        return answer.status_code, answer.headers.get(VERSION_HEADER, ""), elapsed, body

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        results = list(pool.map(one, range(count)))
    return Burst(
        statuses=Counter(status for status, _, _, _ in results),
        versions=Counter(version for status, version, _, _ in results if 200 <= status < 300),
        latencies=tuple(elapsed for _, _, elapsed, _ in results),
        bodies=tuple(body for _, _, _, body in results),
    )


def within_binomial(hits: int, count: int, percent: float) -> bool:
    """Whether `hits` of `count` is what a `percent` % chance gives, within 4 standard deviations."""
    p = percent / 100
    if p <= 0 or p >= 1:
        return hits == (count if p >= 1 else 0)
    return abs(hits - count * p) <= 4 * math.sqrt(count * p * (1 - p)) + 0.5


def _gateway_problem(ctx: Context) -> CheckResult | None:
    """Why visitors cannot come in through the gateway to the storefront's versions, or None."""
    gateway = read_istio(ctx, "Gateway", "bookstore-gateway")
    rule = read_istio(ctx, "DestinationRule", "storefront")
    service = read_istio(ctx, "VirtualService", "storefront")
    missing = [
        name
        for name, obj in (("Gateway bookstore-gateway", gateway), ("DestinationRule storefront", rule))
        if obj is None
    ]
    if missing:
        return CheckResult.failed(
            f"There is no {' and no '.join(missing)} in your namespace: visitors have no way in, or Istio "
            "does not know the storefront's versions.",
            f"{_hint_apply('gateway-bookstore.yaml')} and {_hint_apply('destination-rule-storefront.yaml')}",
        )
    if service is None:
        return CheckResult.failed(
            "There is no VirtualService storefront: the gateway has no route to the storefront.",
            _hint_apply("virtual-service-storefront-100-0.yaml"),
        )
    if "bookstore-gateway" not in ((service.get("spec") or {}).get("gateways") or []):
        return CheckResult.failed(
            "The VirtualService storefront is not bound to the Gateway bookstore-gateway: visitors coming in "
            "through the gateway do not get its routes.",
            "Add bookstore-gateway (and mesh) under spec.gateways, as in "
            + _hint_apply("virtual-service-storefront-100-0.yaml"),
            spec=service.get("spec"),
        )
    return None


def split_matches_weights(ctx: Context, count: int, *, need_v2: bool) -> CheckResult:
    """Measure a burst and compare the versions served with the VirtualService's default weights."""
    problem = _gateway_problem(ctx)
    if problem:
        return problem
    service = read_istio(ctx, "VirtualService", "storefront") or {}
    weights = default_weights(service)
    if need_v2 and weights.get("v2", 0) == 0:
        return CheckResult.failed(
            f"The VirtualService storefront sends everyone to v1 (weights {weights}): no visitor sees v2 yet.",
            "Give v2 a share: " + _hint_apply("virtual-service-storefront-90-10.yaml"),
            weights=weights,
        )
    seen = burst(ctx, count)
    evidence = {"weights": weights, **seen.evidence()}
    if seen.ok < seen.count * ENOUGH_ANSWERS:
        return CheckResult.failed(
            f"Only {seen.ok} of {seen.count} requests through the gateway succeeded.",
            "Look at what the failures say (evidence), then at `kubectl get pods -l app=storefront` and "
            "`kubectl get virtualservice,destinationrule storefront -o yaml`.",
            **evidence,
        )
    for version, percent in weights.items():
        if not within_binomial(seen.versions[version], seen.ok, percent):
            return CheckResult.failed(
                f"The weights say {percent} % to {version}, but {seen.versions[version]} of {seen.ok} answers came "
                f"from {version}: more than chance allows.",
                "Check that each subset of the DestinationRule storefront selects its own pods (labels version: v1 / "
                "v2) and that no other VirtualService for storefront exists (`kubectl get virtualservices`).",
                **evidence,
            )
    shares = ", ".join(f"{v} {seen.versions[v]}/{seen.ok}" for v in sorted(weights))
    return CheckResult.passed(
        f"The gateway split {seen.ok} visitors as the weights {weights} say: {shares}.", **evidence
    )


# --- Mesh membership ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MeshMember:
    """One Deployment as the mesh sees it: its ServiceAccount and which Ready pods have a sidecar."""

    name: str
    exists: bool
    service_account: str = ""
    ready: tuple[str, ...] = ()
    with_sidecar: tuple[str, ...] = ()
    rolling: bool = False

    def evidence(self) -> dict[str, object]:
        return {
            "serviceAccountName": self.service_account,
            "ready pods": list(self.ready),
            "pods with a sidecar": list(self.with_sidecar),
        }


def _plain(ctx: Context, obj: Any) -> Any:
    """A client model as the plain JSON the API sent (dicts with camelCase keys)."""
    return ctx.core.api_client.sanitize_for_serialization(obj)


def look_at_member(ctx: Context, name: str) -> MeshMember:
    """A Deployment and the live pods of its template (by its `app` and `version` labels)."""
    try:
        deployment = _plain(ctx, ctx.apps.read_namespaced_deployment(name, ctx.namespace))
    except ApiException as exc:
        if exc.status == 404:
            return MeshMember(name, exists=False)
        raise
    template = deployment["spec"]["template"]
    labels = template["metadata"].get("labels") or {}
    selector = ",".join(f"{key}={labels[key]}" for key in ("app", "version") if key in labels)
    listed = _plain(ctx, ctx.core.list_namespaced_pod(ctx.namespace, label_selector=selector))
    pods = [pod for pod in listed["items"] if not pod["metadata"].get("deletionTimestamp")]
    ready = [
        pod
        for pod in pods
        if any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or [])
    ]
    status = deployment.get("status") or {}
    replicas = deployment["spec"].get("replicas", 1)
    rolling = status.get("updatedReplicas", 0) < replicas or len(pods) != replicas or len(ready) < replicas
    return MeshMember(
        name=name,
        exists=True,
        service_account=template["spec"].get("serviceAccountName") or "default",
        ready=tuple(pod["metadata"]["name"] for pod in ready),
        with_sidecar=tuple(
            pod["metadata"]["name"] for pod in ready if SIDECAR_STATUS in (pod["metadata"].get("annotations") or {})
        ),
        rolling=rolling,
    )


def namespace_in_mesh(ctx: Context) -> bool:
    labels = _plain(ctx, ctx.core.read_namespace(ctx.namespace))["metadata"].get("labels") or {}
    return bool(labels.get(INJECTION_LABEL) == "enabled")


def members_in_mesh(ctx: Context, names: Sequence[str]) -> CheckResult:
    """PASSED when each Deployment runs under its own ServiceAccount and all its Ready pods have a sidecar."""
    if not namespace_in_mesh(ctx):
        return CheckResult.failed(
            f"Namespace {ctx.namespace} is not in the mesh: new pods get no sidecar.",
            f"kubectl label namespace {ctx.namespace} istio-injection=enabled",
        )
    seen: dict[str, MeshMember] = {}
    for name in names:
        member = observe(partial(look_at_member, ctx, name), lambda m: not m.exists or not m.rolling).value
        seen[name] = member
        if not member.exists:
            return CheckResult.failed(
                f"There is no Deployment {name!r}.",
                f"Apply the lab's Deployments: kubectl apply -k {LESSON_DIR} (the notebook's first cell does).",
            )
        if member.service_account != name.removesuffix("-v2"):
            return CheckResult.failed(
                f"{name!r} runs under the ServiceAccount {member.service_account!r}: it has no identity of its own "
                "in the mesh (an AuthorizationPolicy could not tell it from other callers).",
                f"Set serviceAccountName: {name.removesuffix('-v2')} in its pod template, as the lab's overlay does: "
                f"kubectl apply -k {LESSON_DIR}",
                **member.evidence(),
            )
        if not member.ready:
            return CheckResult.failed(
                f"Deployment {name!r} has no Ready pod.",
                f"See why: kubectl describe deployment {name}; kubectl get pods -l app={name.removesuffix('-v2')}",
                **member.evidence(),
            )
        if len(member.with_sidecar) < len(member.ready):
            return CheckResult.failed(
                f"Pods of {name!r} run without a sidecar: they started before the namespace joined the mesh, and the "
                "injector only acts when a pod is created.",
                f"Re-create them: kubectl rollout restart deployment {name}",
                **member.evidence(),
            )
    listed = ", ".join(f"{n} (sa/{m.service_account}, {len(m.with_sidecar)} pod with sidecar)" for n, m in seen.items())
    return CheckResult.passed(f"In the mesh: {listed}.", **{n: m.evidence() for n, m in seen.items()})


def restart(ctx: Context, names: Sequence[str]) -> None:
    """`kubectl rollout restart`: a new pod template annotation, so every pod is created again."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
    for name in names:
        ctx.apps.patch_namespaced_deployment(name, ctx.namespace, patch)


def wait_in_mesh(ctx: Context, names: Sequence[str], timeout: float = 180) -> None:
    from labkit._waiting import wait_for

    for name in names:
        wait_for(partial(_running_in_mesh, ctx, name), what=f"{name} to run with a sidecar", timeout=timeout)


def _running_in_mesh(ctx: Context, name: str) -> bool:
    member = look_at_member(ctx, name)
    return member.exists and not member.rolling and len(member.with_sidecar) >= 1


def _objects(kinds: set[str], names: set[str] | None = None) -> list[dict[str, Any]]:
    return [obj for obj in overlay(LAB_ID, kinds=kinds) if names is None or obj["metadata"]["name"] in names]


# --- 05.1 --------------------------------------------------------------------------------------


@check("05.1", title="The bookstore runs in the mesh, each service under its own identity", timeout=240)
def bookstore_in_mesh(ctx: Context) -> CheckResult:
    if serverless_storefront_holds_name(ctx):
        return CheckResult.failed(
            "Lab 04's Knative Service storefront is still here: its Route owns the Service named storefront, so this "
            "lab's storefront cannot have the name (Knative would take it back, and removing lab 04 later would "
            "take this lab's Service with it).",
            "Where to look: `kubectl get ksvc,route,service storefront` (the Service's owner is the Route).",
            "Remove lab 04's storefront with what it owns, then apply this lab's bookstore again: "
            "`kubectl delete ksvc storefront --cascade=foreground` then "
            f"`kubectl apply --server-side --force-conflicts -k {overlay_path(LAB_ID)}` "
            "(in the notebook: the cell of step 2 that calls remove_serverless_storefront(ctx), then its apply cell).",
        )
    return members_in_mesh(ctx, SERVICES)


def serverless_storefront_holds_name(ctx: Context) -> bool:
    """Whether lab 04's Knative Service storefront, or the Service its Route made, still holds the name."""
    try:
        ctx.custom.get_namespaced_custom_object(*KNATIVE_SERVICES[:2], ctx.namespace, KNATIVE_SERVICES[2], "storefront")
        return True
    except ApiException as exc:
        if exc.status != 404:
            raise
    try:
        service = ctx.core.read_namespaced_service("storefront", ctx.namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return False
    owners = (service.metadata and service.metadata.owner_references) or []
    return any(owner.kind == "Route" for owner in owners)


def remove_serverless_storefront(ctx: Context) -> bool:
    """Delete lab 04's Knative Service storefront with what it owns, and wait until the name is free.

    Lab 05 runs the storefront as Deployments (v1 and v2) behind a plain Service named storefront, the
    name lab 04's Route holds. True when there was something to remove (the notebook says so).
    """
    if not serverless_storefront_holds_name(ctx):
        return False
    try:
        ctx.custom.delete_namespaced_custom_object(
            *KNATIVE_SERVICES[:2], ctx.namespace, KNATIVE_SERVICES[2], "storefront", propagation_policy="Foreground"
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
    wait_for(
        lambda: not serverless_storefront_holds_name(ctx),
        what="lab 04's Knative storefront and the Service its Route made to go",
        timeout=90,
    )
    return True


@bookstore_in_mesh.solution
def enable_mesh(ctx: Context) -> None:
    ensure_admin_secret(ctx)
    remove_serverless_storefront(ctx)
    apply(_objects({"ServiceAccount", "PersistentVolumeClaim", "Service"}), connection=ctx)
    apply(_objects({"Deployment"}, set(SERVICES)), connection=ctx)
    ctx.core.patch_namespace(ctx.namespace, {"metadata": {"labels": {INJECTION_LABEL: "enabled"}}})
    restart(ctx, SERVICES)
    wait_in_mesh(ctx, SERVICES)


# --- 05.2 --------------------------------------------------------------------------------------


@check(
    "05.2",
    title="storefront v2 runs beside v1, and the gateway routes visitors as the VirtualService says",
    timeout=240,
)
def v2_beside_v1(ctx: Context) -> CheckResult:
    if not look_at_member(ctx, "storefront-v2").exists:
        return CheckResult.failed(
            "There is no Deployment storefront-v2: only v1 of the storefront runs.",
            f"Apply it from the lab's overlay (kubectl apply -k {LESSON_DIR}), as the notebook's cell does.",
        )
    members = members_in_mesh(ctx, ["storefront-v2"])
    if not members.ok:
        return members
    return split_matches_weights(ctx, 30, need_v2=False)


@v2_beside_v1.solution
def deploy_v2_and_route_to_v1(ctx: Context) -> None:
    apply(_objects({"Deployment"}, {"storefront-v2"}), connection=ctx)
    apply(_objects({"DestinationRule", "Gateway"}), connection=ctx)
    apply_lesson(ctx, "virtual-service-storefront-100-0.yaml")
    wait_in_mesh(ctx, ["storefront-v2"])


# --- 05.3 --------------------------------------------------------------------------------------


@check("05.3", title="Visitors are split between v1 and v2 by weight (gray release)", timeout=120)
def weighted_split(ctx: Context) -> CheckResult:
    return split_matches_weights(ctx, 200, need_v2=True)


@weighted_split.solution
def route_90_10(ctx: Context) -> None:
    apply_lesson(ctx, "virtual-service-storefront-90-10.yaml")


# --- 05.4 --------------------------------------------------------------------------------------


@check("05.4", title="The test user always gets v2 (canary by header)", timeout=60)
def tester_gets_v2(ctx: Context) -> CheckResult:
    problem = _gateway_problem(ctx)
    if problem:
        return problem
    service = read_istio(ctx, "VirtualService", "storefront") or {}
    seen = burst(ctx, 20, headers=TESTER)
    evidence = {"header": TESTER, **seen.evidence()}
    if seen.ok >= ENOUGH_ANSWERS * seen.count and set(seen.versions) == {"v2"}:
        how = "by its header rule" if _tester_rule(service) else "as everyone"
        return CheckResult.passed(f"All {seen.count} requests of the test user were served by v2 ({how}).", **evidence)
    hint = (
        "Put a rule matching the header end-user: tester (exact) before the weighted rule, routing to subset v2: "
        + _hint_apply("virtual-service-storefront-tester-v2.yaml")
    )
    if _tester_rule(service) is not None and (service.get("spec") or {}).get("http", [{}])[0] is not _tester_rule(
        service
    ):
        hint = "Rules apply in order and the first match wins: move the end-user rule first. " + hint
    return CheckResult.failed(
        f"The test user (header end-user: tester) got {dict(seen.versions)} from {seen.count} requests, "
        "not v2 every time.",
        hint,
        **evidence,
    )


@tester_gets_v2.solution
def route_tester_to_v2(ctx: Context) -> None:
    apply_lesson(ctx, "virtual-service-storefront-tester-v2.yaml")


# --- 05.5 --------------------------------------------------------------------------------------

#: The storefront's sidecars report its calls to stock (reporter="source").
FAULTED = {"delay": ("DI", 25.0), "abort": ("FI", 50.0)}


def stock_calls(ctx: Context) -> Counter[str]:
    """The storefront sidecars' calls to stock so far: in all, delayed (DI), aborted (FI)."""
    samples: list[Sample] = scrape(label_selector="app=storefront", connection=ctx)
    flags = requests_by(samples, "response_flags", reporter="source", destination_service_name="stock")
    total: Counter[str] = Counter()
    for value, count in flags.items():
        total["all"] += int(count)
        for flag in value.split(","):
            total[flag] += int(count)
    return total


def settled(read: Callable[[], Counter[str]], *, quiet: float = 0.5, timeout: float = 5.0) -> Counter[str]:
    """Read until two reads `quiet` seconds apart agree: calls the gateway gave up on still run to their
    end inside the storefront (up to the 2 s delay), and are counted when they do."""
    deadline = time.monotonic() + timeout
    last = read()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = read()
        if now == last:
            return now
        last = now
    return last


def _fault_of(ctx: Context) -> dict[str, Any] | None:
    service = read_istio(ctx, "VirtualService", "stock")
    if service is None:
        return None
    for rule in (service.get("spec") or {}).get("http") or []:
        if rule.get("fault"):
            return dict(rule["fault"])
    return None


@check("05.5", title="Faults are injected on the storefront's calls to stock, as configured", timeout=120)
def faults_on_stock(ctx: Context) -> CheckResult:
    fault = _fault_of(ctx)
    if fault is None:
        return CheckResult.failed(
            "No VirtualService for stock injects faults: the storefront's calls to stock all go through.",
            _hint_apply("virtual-service-stock-delay-abort.yaml"),
        )
    delay = (fault.get("delay") or {}).get("percentage", {}).get("value", 0)
    abort = (fault.get("abort") or {}).get("percentage", {}).get("value", 0)
    before = stock_calls(ctx)
    seen = burst(ctx, 40, parallel=10)
    after = settled(lambda: stock_calls(ctx))
    calls = after["all"] - before["all"]
    delayed, aborted = after["DI"] - before["DI"], after["FI"] - before["FI"]
    evidence = {
        "fault": fault,
        "storefront → stock calls": calls,
        "delayed (DI)": delayed,
        "aborted (FI)": aborted,
        "what visitors got": seen.evidence(),
    }
    if calls < 20:
        return CheckResult.failed(
            f"The storefront made only {calls} calls to stock for {seen.count} visits, as its sidecar reports.",
            "The storefront must be in the mesh (05.1) and serving through the gateway (05.2); look at the evidence.",
            **evidence,
        )
    if not within_binomial(delayed, calls, float(delay)) or not within_binomial(aborted, calls, float(abort)):
        return CheckResult.failed(
            f"Of {calls} calls to stock, {delayed} were delayed and {aborted} aborted: not the {delay} % and {abort} % "
            "the fault says.",
            "Check that the fault's VirtualService names host stock and that no other VirtualService for stock exists: "
            "kubectl get virtualservices",
            **evidence,
        )
    return CheckResult.passed(
        f"The storefront's sidecar delayed {delayed} and aborted {aborted} of {calls} calls to stock "
        f"(fault {delay} % / {abort} %); visitors got {dict(sorted(seen.statuses.items()))}.",
        **evidence,
    )


@faults_on_stock.solution
def inject_faults(ctx: Context) -> None:
    apply_lesson(ctx, "virtual-service-stock-delay-abort.yaml")


# --- 05.6 --------------------------------------------------------------------------------------


def seconds_of(duration: str | None) -> float | None:
    """Seconds of a duration as Istio writes them (`3s`, `500ms`, `1m`)."""
    if not duration:
        return None
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if duration.endswith(unit) and duration[: -len(unit)].replace(".", "", 1).isdigit():
            return float(duration[: -len(unit)]) * units[unit]
    return None


def _resilience(service: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    for rule in (service.get("spec") or {}).get("http") or []:
        if not rule.get("match"):
            return rule.get("timeout"), rule.get("retries")
    return None, None


@check("05.6", title="With a timeout and retries, visitors get answers again", timeout=120)
def storefront_recovers(ctx: Context) -> CheckResult:
    problem = _gateway_problem(ctx)
    if problem:
        return problem
    timeout, retries = _resilience(read_istio(ctx, "VirtualService", "storefront") or {})
    if not retries or not int(retries.get("attempts") or 0) or not timeout:
        return CheckResult.failed(
            f"The storefront's route has {'no timeout' if not timeout else 'a timeout'} and "
            f"{'no retries' if not retries else 'retries ' + str(retries)}: visitors wait for slow calls and see every "
            "failure.",
            "Add timeout and retries (attempts, perTryTimeout, retryOn: 5xx) to the storefront's rules: "
            + _hint_apply("virtual-service-storefront-timeout-retries.yaml"),
            timeout=timeout,
            retries=retries,
        )
    served_before = requests_by(scrape(label_selector="app=storefront", connection=ctx), "destination_service_name")
    seen = burst(ctx, 40, parallel=10)
    served_after = requests_by(scrape(label_selector="app=storefront", connection=ctx), "destination_service_name")
    attempts = int(served_after["storefront"] - served_before["storefront"])
    evidence = {"timeout": timeout, "retries": retries, "storefront served (attempts)": attempts, **seen.evidence()}
    if seen.ok < ENOUGH_ANSWERS * seen.count:
        return CheckResult.failed(
            f"Only {seen.ok} of {seen.count} visitors got an answer: the retries do not make up for the faults.",
            "Retry on 5xx with enough attempts (5) and a perTryTimeout shorter than the 2 s delay (500ms): "
            + _hint_apply("virtual-service-storefront-timeout-retries.yaml"),
            **evidence,
        )
    limit = (seconds_of(timeout) or 0.0) + 1.0
    if max(seen.latencies) > limit:
        return CheckResult.failed(
            f"A visitor waited {max(seen.latencies):.1f} s, longer than the route's timeout ({timeout}) allows.",
            "The timeout belongs to the storefront's rules in the VirtualService bound to the gateway: "
            + _hint_apply("virtual-service-storefront-timeout-retries.yaml"),
            **evidence,
        )
    if attempts <= seen.count:
        return CheckResult.failed(
            f"The storefront served {attempts} requests for {seen.count} visits: no request was tried again.",
            "retryOn must include 5xx (the storefront answers 503 when stock's call is aborted).",
            **evidence,
        )
    return CheckResult.passed(
        f"{seen.ok} of {seen.count} visitors got an answer, none waited past the timeout (p90 "
        f"{seen.percentile(0.9):.2f} s); the storefront served {attempts} tries for them (retries, in its metrics).",
        **evidence,
    )


@storefront_recovers.solution
def add_timeout_and_retries(ctx: Context) -> None:
    apply_lesson(ctx, "virtual-service-storefront-timeout-retries.yaml")


# --- 05.7 --------------------------------------------------------------------------------------


def _direct(ctx: Context, method: str, url: str) -> httpx.Response:
    return ctx.http.request(method, url)


@check("05.7", title="Only the storefront may call stock and balance", timeout=60)
def internal_endpoints_locked(ctx: Context) -> CheckResult:
    refund = _direct(ctx, "POST", f"http://balance/api/payments/{secrets.token_hex(4)}/refund")
    order = _direct(ctx, "GET", "http://stock/api/books")
    evidence: dict[str, object] = {
        "direct refund (notebook → balance)": f"{refund.status_code} {refund.text[:80]}",
        "direct read (notebook → stock)": f"{order.status_code} {order.text[:80]}",
    }
    missing = [
        name for name, answer in (("balance", refund), ("stock", order)) if answer.status_code in (502, 503, 504)
    ]
    if missing:
        return CheckResult.failed(
            f"{' and '.join(missing)} did not answer at all: the bookstore is not running in your namespace.",
            "Do the earlier steps of this lab first (05.1 deploys the services in the mesh).",
            **evidence,
        )
    open_to = [name for name, answer in (("balance", refund), ("stock", order)) if answer.status_code != 403]
    if open_to:
        return CheckResult.failed(
            f"{' and '.join(open_to)} still answer{'s' if len(open_to) == 1 else ''} a caller that is not the "
            "storefront (this notebook): anyone can take money back or books for free.",
            "Allow only the storefront's identity at stock and balance: "
            + _hint_apply("authorization-policy-stock-balance-storefront-only.yaml"),
            **evidence,
        )
    if RBAC_DENIED not in refund.text:
        return CheckResult.failed(
            f"balance refused the refund, but not with Istio's answer ({refund.text[:80]!r}).",
            "Let the AuthorizationPolicy refuse it (403 RBAC: access denied): kubectl get authorizationpolicies",
            **evidence,
        )
    user = f"mesh-{secrets.token_hex(3)}"
    opened = through_gateway("POST", "/api/users", json={"name": user}, connection=ctx)
    evidence["new account through the storefront"] = f"{opened.status_code} {opened.text[:80]}"
    if opened.status_code != 201:
        return CheckResult.failed(
            "The storefront itself can no longer reach balance: opening an account through it failed.",
            "Allow the storefront's ServiceAccount: rules: - from: - source: serviceAccounts: [storefront] "
            "(check `kubectl get deployment storefront -o jsonpath={.spec.template.spec.serviceAccountName}`).",
            **evidence,
        )
    return CheckResult.passed(
        "A direct refund from the notebook got 403 RBAC: access denied, and the storefront opened an account "
        "at balance.",
        **evidence,
    )


@internal_endpoints_locked.solution
def lock_internal_endpoints(ctx: Context) -> None:
    apply_lesson(ctx, "authorization-policy-stock-balance-storefront-only.yaml")


# --- 05.8 --------------------------------------------------------------------------------------


@check("05.8", title="The release is done: v2 serves every visitor", timeout=120)
def v2_for_everyone(ctx: Context) -> CheckResult:
    problem = _gateway_problem(ctx)
    if problem:
        return problem
    weights = default_weights(read_istio(ctx, "VirtualService", "storefront") or {})
    if weights.get("v2") != 100:
        return CheckResult.failed(
            f"The storefront's weights are {weights}: v1 still serves visitors.",
            "Send everyone to v2: " + _hint_apply("virtual-service-storefront-v2.yaml"),
            weights=weights,
        )
    return split_matches_weights(ctx, 30, need_v2=True)


@v2_for_everyone.solution
def finish_release(ctx: Context) -> None:
    apply_lesson(ctx, "virtual-service-storefront-v2.yaml")


# --- 05.9: the fix-it challenge ------------------------------------------------------------------


def start_challenge(ctx: Context) -> None:
    """A colleague's change goes live (the notebook's challenge cell runs this)."""
    try:
        marker = V1ConfigMap(
            metadata=V1ObjectMeta(name=CHALLENGE, labels={"bookstore.workshop/lab": LAB_ID}),
            data={"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        )
        ctx.core.create_namespaced_config_map(ctx.namespace, marker)
    except ApiException as exc:
        if exc.status != 409:
            raise
    subsets = [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2.0"}}]
    group, version = NETWORKING
    ctx.custom.patch_namespaced_custom_object(
        group, version, ctx.namespace, "destinationrules", "storefront", {"spec": {"subsets": subsets}}
    )


def _challenge_started(ctx: Context) -> bool:
    try:
        ctx.core.read_namespaced_config_map(CHALLENGE, ctx.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


@check("05.9", title="Challenge: the bookstore answers its visitors again", timeout=60)
def challenge_fixed(ctx: Context) -> CheckResult:
    if not _challenge_started(ctx):
        return CheckResult.failed(
            "The challenge has not started yet.",
            "Run the notebook's challenge cell (checkers.lab05_mesh.start_challenge), then find what broke.",
        )
    seen = burst(ctx, 20, path="/")
    if seen.ok == seen.count:
        return CheckResult.passed(f"All {seen.count} visitors got the page again.", **seen.evidence())
    return CheckResult.failed(
        f"{seen.count - seen.ok} of {seen.count} visitors got an error page instead of the bookstore.",
        "Read what answered (the error bodies in the evidence are Envoy's own words); then compare what the route's "
        "destination asks for with the pods there are: `kubectl get virtualservice,destinationrule storefront -o yaml` "
        "and `kubectl get pods -l app=storefront --show-labels`; the lab's files in "
        f"{LESSON_DIR} hold the working objects.",
        **seen.evidence(),
    )


@challenge_fixed.solution
def fix_challenge(ctx: Context) -> None:
    if not _challenge_started(ctx):
        start_challenge(ctx)
    apply(_objects({"DestinationRule"}), connection=ctx)


# --- reset ---------------------------------------------------------------------------------------

LESSON_OBJECTS = (
    ("VirtualService", "storefront"),
    ("VirtualService", "stock"),
    ("DestinationRule", "storefront"),
    ("Gateway", "bookstore-gateway"),
    ("AuthorizationPolicy", "stock-storefront-only"),
    ("AuthorizationPolicy", "balance-storefront-only"),
)


def remove_lessons(ctx: Context) -> None:
    """Remove the lesson objects (VirtualServices, DestinationRule, Gateway, policies) and the challenge:
    the mesh as before this lab's steps, the workloads left running (a notebook starts with it)."""
    for kind, name in LESSON_OBJECTS:
        delete_istio(ctx, kind, name)
    _ignore_missing(lambda: ctx.core.delete_namespaced_config_map(CHALLENGE, ctx.namespace))


def reset(ctx: Context) -> None:
    """Remove the lab's mesh objects, its Deployments (v1 and v2), Services, claims and ServiceAccounts,
    and take the namespace out of the mesh."""
    remove_lessons(ctx)
    for name in SERVICES:
        _ignore_missing(partial(ctx.core.delete_namespaced_service_account, name, ctx.namespace))
    delete_lab_objects(ctx, LAB_ID)
    ctx.core.patch_namespace(ctx.namespace, {"metadata": {"labels": {INJECTION_LABEL: None}}})


def _ignore_missing(delete: Callable[[], object]) -> None:
    try:
        delete()
    except ApiException as exc:
        if exc.status != 404:
            raise
