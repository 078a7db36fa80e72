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

from checkers import challenges
from checkers._api import ignore_missing, read_or_none
from checkers._context import Context
from checkers._lessons import apply_command, load_lesson
from checkers._registry import check
from checkers._result import CheckResult
from checkers._runner import observe
from checkers.diagnosis import await_workload, diagnose_workload, overlay_fix, overlay_fixes
from checkers.lab01_monolith import delete_lab_objects
from labkit._apply import apply
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
#: The fix-it challenge's check: its start is recorded with the other labs' (checkers.challenges).
CHALLENGE = "05.9"
LESSON_DIR = f"infra/overlays/{LAB_ID}"
#: The lesson files, one per step.
GATEWAY = "gateway-bookstore.yaml"
SUBSETS = "destination-rule-storefront.yaml"
ROUTE_100_0 = "virtual-service-storefront-100-0.yaml"
ROUTE_90_10 = "virtual-service-storefront-90-10.yaml"
ROUTE_TESTER = "virtual-service-storefront-tester-v2.yaml"
STOCK_FAULTS = "virtual-service-stock-delay-abort.yaml"
ROUTE_RESILIENT = "virtual-service-storefront-timeout-retries.yaml"
ROUTE_V2 = "virtual-service-storefront-v2.yaml"
POLICIES = "authorization-policy-stock-balance-storefront-only.yaml"
#: The split of the gray release step (05.3).
GRAY_RELEASE = {"v1": 90, "v2": 10}
#: The share of visitors that must get an answer for a burst to say anything: with the lab's faults in
#: place and the retries of step 6, about 9 in 10 do; 7 in 10 keeps chance far from a false FAILED.
ENOUGH_ANSWERS = 0.7


def lesson(name: str) -> list[dict[str, Any]]:
    """The objects of one lesson file of the lab (e.g. virtual-service-storefront-90-10.yaml)."""
    return load_lesson(LAB_ID, name)


def apply_lesson(ctx: Context, name: str) -> None:
    apply(lesson(name), connection=ctx)


def _apply_file(name: str) -> str:
    return apply_command(LAB_ID, name)


# --- Reading Istio objects ---------------------------------------------------------------------


def read_istio(ctx: Context, kind: str, name: str) -> dict[str, Any] | None:
    """An Istio object of the namespace, or None if there is none by that name."""
    group, version = SECURITY if kind == "AuthorizationPolicy" else NETWORKING
    plural = "authorizationpolicies" if kind == "AuthorizationPolicy" else f"{kind.lower()}s"
    found = read_or_none(lambda: ctx.custom.get_namespaced_custom_object(group, version, ctx.namespace, plural, name))
    return None if found is None else dict(found)  # type: ignore[call-overload]


def delete_istio(ctx: Context, kind: str, name: str) -> None:
    group, version = SECURITY if kind == "AuthorizationPolicy" else NETWORKING
    plural = "authorizationpolicies" if kind == "AuthorizationPolicy" else f"{kind.lower()}s"
    ignore_missing(lambda: ctx.custom.delete_namespaced_custom_object(group, version, ctx.namespace, plural, name))


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


def _gateway_problem(ctx: Context, lesson_file: str) -> CheckResult | None:
    """Why visitors cannot come in through the gateway to the storefront's versions, or None.

    `lesson_file` is the step's VirtualService: what a hint applies when the routes are what is wrong.
    """
    gateway = read_istio(ctx, "Gateway", "bookstore-gateway")
    rule = read_istio(ctx, "DestinationRule", "storefront")
    service = read_istio(ctx, "VirtualService", "storefront")
    if gateway is None:
        return CheckResult.failed(
            "There is no Gateway bookstore-gateway in your namespace: visitors have no way in.",
            "`kubectl get gateways`",
            f"Apply it: {_apply_file(GATEWAY)}.",
        )
    if rule is None:
        return CheckResult.failed(
            "There is no DestinationRule storefront in your namespace: Istio does not know the storefront's versions "
            "(its subsets v1 and v2).",
            "`kubectl get destinationrules`",
            f"Apply it: {_apply_file(SUBSETS)}.",
        )
    if service is None:
        return CheckResult.failed(
            "There is no VirtualService storefront: the gateway has no route to the storefront.",
            "`kubectl get virtualservices`",
            f"Apply this step's routes: {_apply_file(lesson_file)}.",
        )
    if "bookstore-gateway" not in ((service.get("spec") or {}).get("gateways") or []):
        return CheckResult.failed(
            "The VirtualService storefront is not bound to the Gateway bookstore-gateway: visitors coming in "
            "through the gateway do not get its routes.",
            "`kubectl get virtualservice storefront -o yaml`: spec.gateways must name bookstore-gateway (and mesh).",
            f"Apply this step's routes, bound to both: {_apply_file(lesson_file)}.",
            spec=service.get("spec"),
        )
    return _subset_problem(ctx, service, rule, lesson_file)


def _subset_problem(
    ctx: Context, service: Mapping[str, Any], rule: Mapping[str, Any], lesson_file: str
) -> CheckResult | None:
    """A route to a subset the DestinationRule does not define, or a subset that selects no storefront pod.

    The API accepts both, as upstream; Istio then answers the requests routed there 503, whatever the
    weights say. Found from the objects, so the check says so at once instead of counting failures.
    """
    defined = {s["name"]: dict(s.get("labels") or {}) for s in (rule.get("spec") or {}).get("subsets") or []}
    routed = sorted(
        {
            route["destination"]["subset"]
            for http in (service.get("spec") or {}).get("http") or []
            for route in http.get("route") or []
            if (route.get("destination") or {}).get("subset")
        }
    )
    look = "`kubectl get virtualservice,destinationrule storefront -o yaml` (route[].destination.subset, subsets[])"
    undefined = [subset for subset in routed if subset not in defined]
    if undefined:
        the_labs = {s["name"] for obj in lesson(SUBSETS) for s in obj["spec"]["subsets"]}
        fix_file = SUBSETS if set(undefined) <= the_labs else lesson_file
        return CheckResult.failed(
            f"The VirtualService storefront routes to subset {', '.join(undefined)}, which the DestinationRule "
            f"storefront does not define (it defines: {', '.join(sorted(defined)) or 'none'}): Istio answers the "
            "requests routed there 503.",
            look,
            f"Apply the lab's {'subsets' if fix_file == SUBSETS else 'routes'}: {_apply_file(fix_file)}.",
            subsets=defined,
            routed_to=routed,
        )
    listed = _plain(ctx, ctx.core.list_namespaced_pod(ctx.namespace, label_selector="app=storefront"))
    pods = [
        dict(pod["metadata"].get("labels") or {})
        for pod in listed["items"]
        if not pod["metadata"].get("deletionTimestamp")
    ]
    for subset in routed:
        labels = defined[subset]
        if not any(labels.items() <= pod.items() for pod in pods):
            wanted = ",".join(f"{key}={value}" for key, value in labels.items())
            have = sorted({f"version={pod.get('version')}" for pod in pods})
            return CheckResult.failed(
                f"Subset {subset} of the DestinationRule storefront selects {wanted}, and no storefront pod has "
                f"those labels (they have {', '.join(have) or 'none'}): Istio answers the requests routed to "
                f"{subset} 503.",
                "`kubectl get destinationrule storefront -o yaml` (subsets) against "
                "`kubectl get pods -l app=storefront --show-labels`",
                f"Put back the lab's subsets: {_apply_file(SUBSETS)}.",
                subsets=defined,
            )
    return None


def judge_routes(ctx: Context, lesson_file: str, judge: Callable[[dict[str, Any]], CheckResult]) -> CheckResult:
    """`judge` the VirtualService storefront once visitors can reach the storefront's versions through the
    gateway, else FAILED naming what is in the way (`lesson_file`: the step's routes, for the fix)."""
    problem = _gateway_problem(ctx, lesson_file)
    if problem:
        return problem
    return judge(read_istio(ctx, "VirtualService", "storefront") or {})


def measure_split(ctx: Context, count: int, weights: Mapping[str, int], lesson_file: str) -> CheckResult:
    """Measure a burst and compare the versions served with the VirtualService's default weights."""
    seen = burst(ctx, count)
    evidence = {"weights": weights, **seen.evidence()}
    if seen.ok < seen.count * ENOUGH_ANSWERS:
        return CheckResult.failed(
            f"Only {seen.ok} of {seen.count} requests through the gateway succeeded.",
            "Look at what the failures say (evidence), then at `kubectl get pods -l app=storefront` and "
            "`kubectl get virtualservice,destinationrule storefront -o yaml`.",
            f"This step's routes are {_apply_file(lesson_file)}; the subsets {_apply_file(SUBSETS)}.",
            **evidence,
        )
    for version, percent in weights.items():
        if not within_binomial(seen.versions[version], seen.ok, percent):
            return CheckResult.failed(
                f"The weights say {percent} % to {version}, but {seen.versions[version]} of {seen.ok} answers came "
                f"from {version}: more than chance allows.",
                "Check that each subset of the DestinationRule storefront selects its own pods (labels version: v1 / "
                "v2) and that no other VirtualService for storefront exists (`kubectl get virtualservices`).",
                f"Put back the lab's subsets: {_apply_file(SUBSETS)}.",
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
    found = read_or_none(lambda: ctx.apps.read_namespaced_deployment(name, ctx.namespace))
    if found is None:
        return MeshMember(name, exists=False)
    deployment = _plain(ctx, found)
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
    for name in names:
        member = look_at_member(ctx, name)
        if not member.exists:
            return diagnose_workload(ctx, name).failed(fixes=overlay_fixes(LAB_ID, name))
        if member.service_account != name.removesuffix("-v2"):
            return CheckResult.failed(
                f"{name!r} runs under the ServiceAccount {member.service_account!r}: it has no identity of its own "
                "in the mesh (an AuthorizationPolicy could not tell it from other callers).",
                f"`kubectl get deployment {name} -o yaml` (spec.template.spec.serviceAccountName): the lab's overlay "
                f"sets serviceAccountName: {name.removesuffix('-v2')}.",
                overlay_fix(LAB_ID, name),
                **member.evidence(),
            )
    if not namespace_in_mesh(ctx):
        return CheckResult.failed(
            f"Namespace {ctx.namespace} is not in the mesh (it has no label {INJECTION_LABEL}=enabled): its pods get "
            "no sidecar.",
            f"`kubectl get namespace {ctx.namespace} --show-labels`; the injector acts only on pods created after "
            "the label is set.",
            f"Label it, then re-create the pods: `kubectl label namespace {ctx.namespace} {INJECTION_LABEL}=enabled "
            f"--overwrite`, `kubectl rollout restart deployment {' '.join(names)}`.",
        )
    workloads = await_workload(ctx, *names)
    if not workloads.ready:
        name = next((n for n in names if workloads.subject == f"Deployment {n}"), names[0])
        return workloads.failed(fixes=overlay_fixes(LAB_ID, name))
    seen = {name: observe(partial(look_at_member, ctx, name), lambda m: not m.rolling).value for name in names}
    lacking = [name for name, member in seen.items() if len(member.with_sidecar) < len(member.ready)]
    if lacking:
        return CheckResult.failed(
            f"Pods of {', '.join(lacking)} run without a sidecar: they were created before the namespace joined the "
            "mesh, and the injector only acts when a pod is created.",
            f"`kubectl describe pods` (a pod with a sidecar has the annotation {SIDECAR_STATUS}).",
            f"Re-create them: `kubectl rollout restart deployment {' '.join(lacking)}`.",
            **{name: seen[name].evidence() for name in lacking},
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
    group, version, plural = KNATIVE_SERVICES
    knative = read_or_none(
        lambda: ctx.custom.get_namespaced_custom_object(group, version, ctx.namespace, plural, "storefront")
    )
    if knative is not None:
        return True
    service = read_or_none(lambda: ctx.core.read_namespaced_service("storefront", ctx.namespace))
    if service is None:
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
    group, version, plural = KNATIVE_SERVICES
    ignore_missing(
        lambda: ctx.custom.delete_namespaced_custom_object(
            group, version, ctx.namespace, plural, "storefront", propagation_policy="Foreground"
        )
    )
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
            "`kubectl get deployments`: the lab's overlay has storefront-v2 beside storefront.",
            overlay_fix(LAB_ID, "storefront-v2"),
        )
    members = members_in_mesh(ctx, ["storefront-v2"])
    if not members.ok:
        return members
    return judge_routes(ctx, ROUTE_100_0, lambda service: measure_split(ctx, 30, default_weights(service), ROUTE_100_0))


@v2_beside_v1.solution
def deploy_v2_and_route_to_v1(ctx: Context) -> None:
    apply(_objects({"Deployment"}, {"storefront-v2"}), connection=ctx)
    apply(_objects({"DestinationRule", "Gateway"}), connection=ctx)
    apply_lesson(ctx, ROUTE_100_0)
    wait_in_mesh(ctx, ["storefront-v2"])


# --- 05.3 --------------------------------------------------------------------------------------


@check("05.3", title="Visitors are split between v1 and v2 by weight (gray release)", timeout=120)
def weighted_split(ctx: Context) -> CheckResult:
    return judge_routes(ctx, ROUTE_90_10, partial(_gray_release, ctx))


def _gray_release(ctx: Context, service: Mapping[str, Any]) -> CheckResult:
    weights = default_weights(service)
    released = weights.get("v2") == 100  # the release went on to its end (05.8): the gray step is behind
    if weights != GRAY_RELEASE and not released:
        return CheckResult.failed(
            f"The VirtualService storefront's rule for everyone sends {_shares(weights)}; the gray release asks "
            f"{_shares(GRAY_RELEASE)}.",
            "`kubectl get virtualservice storefront -o yaml` (http[].route[].weight of the rule without match)",
            f"Route one visitor in ten to v2: {_apply_file(ROUTE_90_10)}.",
            weights=weights,
        )
    return measure_split(ctx, 200, weights, ROUTE_90_10)


def _shares(weights: Mapping[str, int]) -> str:
    return " and ".join(f"{percent} % to {version}" for version, percent in weights.items()) or "nobody anywhere"


weighted_split.solution(partial(apply_lesson, name=ROUTE_90_10))


# --- 05.4 --------------------------------------------------------------------------------------


def _tester_problem(service: Mapping[str, Any]) -> CheckResult | None:
    """What keeps the header rule from sending the test user to v2, read from the VirtualService."""
    rules = (service.get("spec") or {}).get("http") or []
    tester = _tester_rule(service)
    look = "`kubectl get virtualservice storefront -o yaml` (spec.http: its rules in order, with their match)"
    fix = f"Put the header rule first, routing to v2: {_apply_file(ROUTE_TESTER)}."
    if tester is None:
        return CheckResult.failed(
            "No rule of the VirtualService storefront matches the header end-user: tester (exact): the test user is "
            "routed as everyone.",
            look,
            fix,
        )
    everyone = next((index for index, rule in enumerate(rules) if not rule.get("match")), len(rules))
    if rules.index(tester) > everyone:
        return CheckResult.failed(
            "The rule for end-user: tester comes after the rule for everyone: rules apply in order and the first "
            "match wins, so the test user never reaches it.",
            look,
            fix,
        )
    subsets = {(route.get("destination") or {}).get("subset") for route in tester.get("route") or []}
    if subsets != {"v2"}:
        return CheckResult.failed(
            f"The rule for end-user: tester routes to {sorted(str(s) for s in subsets)}, not to subset v2 alone.",
            look,
            fix,
        )
    return None


@check("05.4", title="The test user always gets v2 (canary by header)", timeout=60)
def tester_gets_v2(ctx: Context) -> CheckResult:
    return judge_routes(ctx, ROUTE_TESTER, partial(_tester_served_v2, ctx))


def _tester_served_v2(ctx: Context, service: Mapping[str, Any]) -> CheckResult:
    if default_weights(service).get("v2") != 100:  # once everyone gets v2 (05.8), so does the test user
        problem = _tester_problem(service)
        if problem:
            return problem
    seen = burst(ctx, 20, headers=TESTER)
    evidence = {"header": TESTER, **seen.evidence()}
    if seen.ok >= ENOUGH_ANSWERS * seen.count and set(seen.versions) == {"v2"}:
        how = "by its header rule" if _tester_rule(service) else "as everyone"
        return CheckResult.passed(f"All {seen.count} requests of the test user were served by v2 ({how}).", **evidence)
    return CheckResult.failed(
        f"The test user (header end-user: tester) got {dict(seen.versions)} from {seen.count} requests, "
        "not v2 every time.",
        "Look at what the failures say (evidence) and at `kubectl get virtualservice,destinationrule storefront -o "
        "yaml`.",
        f"This step's routes: {_apply_file(ROUTE_TESTER)}.",
        **evidence,
    )


tester_gets_v2.solution(partial(apply_lesson, name=ROUTE_TESTER))


# --- 05.5 --------------------------------------------------------------------------------------


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


def _lesson_fault() -> Mapping[str, Any]:
    (service,) = lesson(STOCK_FAULTS)
    return dict(service["spec"]["http"][0]["fault"])


def _fault_terms(fault: Mapping[str, Any]) -> dict[str, object]:
    delay, abort = fault.get("delay") or {}, fault.get("abort") or {}
    return {
        "delay": delay.get("fixedDelay"),
        "delayed %": (delay.get("percentage") or {}).get("value"),
        "abort status": abort.get("httpStatus"),
        "aborted %": (abort.get("percentage") or {}).get("value"),
    }


def _fault_differences(fault: Mapping[str, Any], asked: Mapping[str, Any]) -> list[str]:
    """Each term of `fault` that is not what `asked` says, in words ("aborted %: 5, this step asks 50")."""
    have, wanted = _fault_terms(fault), _fault_terms(asked)
    same = {"delay": lambda a, b: seconds_of(str(a)) == seconds_of(str(b))}
    return [
        f"{term}: {have[term] if have[term] is not None else 'none'}, this step asks {value}"
        for term, value in wanted.items()
        if not same.get(term, lambda a, b: a == b)(have[term], value)
    ]


@check("05.5", title="Faults are injected on the storefront's calls to stock, as configured", timeout=120)
def faults_on_stock(ctx: Context) -> CheckResult:
    fault = _fault_of(ctx)
    if fault is None:
        return CheckResult.failed(
            "No VirtualService for stock injects faults: the storefront's calls to stock all go through.",
            "`kubectl get virtualservices`: the faults belong to a VirtualService for host stock (spec.http[].fault).",
            f"Inject this step's faults: {_apply_file(STOCK_FAULTS)}.",
        )
    differs = _fault_differences(fault, _lesson_fault())
    if differs:
        return CheckResult.failed(
            "The fault on the storefront's calls to stock is not the one this step asks for: "
            + "; ".join(differs)
            + ".",
            "`kubectl get virtualservice stock -o yaml` (spec.http[].fault: delay and abort, each with a percentage)",
            f"Inject this step's faults: {_apply_file(STOCK_FAULTS)}.",
            fault=fault,
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


faults_on_stock.solution(partial(apply_lesson, name=STOCK_FAULTS))


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


def _resilience_gaps(timeout: str | None, retries: Mapping[str, Any]) -> list[str]:
    """What a route's timeout and retries lack against stock's faults (a delay, 503s), in words."""
    delay = seconds_of(str(_lesson_fault()["delay"]["fixedDelay"])) or 0.0
    per_try = seconds_of(retries.get("perTryTimeout"))
    retry_on = {condition.strip() for condition in str(retries.get("retryOn") or "").split(",")}
    gaps = []
    if not timeout:
        gaps.append("it has no timeout, so visitors wait for every slow call")
    if not int(retries.get("attempts") or 0):
        gaps.append("it has no retries, so visitors see every failure")
    else:
        if per_try is None or per_try >= delay:
            gaps.append(
                f"perTryTimeout is {retries.get('perTryTimeout') or 'unset'}: a try held up by the {delay:g} s delay "
                "is not cut short and tried again"
            )
        if not retry_on & {"5xx", "gateway-error"}:
            gaps.append(
                f"retryOn is {retries.get('retryOn') or 'unset'}: it does not cover the 503 the storefront answers "
                "when its call to stock is aborted"
            )
    return gaps


@check("05.6", title="With a timeout and retries, visitors get answers again", timeout=120)
def storefront_recovers(ctx: Context) -> CheckResult:
    return judge_routes(ctx, ROUTE_RESILIENT, partial(_visitors_recover, ctx))


def _visitors_recover(ctx: Context, service: Mapping[str, Any]) -> CheckResult:
    timeout, retries = _resilience(service)
    weak = _resilience_gaps(timeout, retries or {})
    if weak:
        return CheckResult.failed(
            "The storefront's rule for everyone does not protect visitors from the faults: " + "; ".join(weak) + ".",
            "`kubectl get virtualservice storefront -o yaml` (timeout and retries of the rule without match)",
            f"Add this step's timeout and retries: {_apply_file(ROUTE_RESILIENT)}.",
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
            "Retry on 5xx with enough attempts (5) and a perTryTimeout shorter than the 2 s delay (500ms).",
            f"This step's timeout and retries: {_apply_file(ROUTE_RESILIENT)}.",
            **evidence,
        )
    limit = (seconds_of(timeout) or 0.0) + 1.0
    if max(seen.latencies) > limit:
        return CheckResult.failed(
            f"A visitor waited {max(seen.latencies):.1f} s, longer than the route's timeout ({timeout}) allows.",
            "The timeout belongs to the storefront's rules in the VirtualService bound to the gateway.",
            f"This step's timeout and retries: {_apply_file(ROUTE_RESILIENT)}.",
            **evidence,
        )
    if attempts <= seen.count:
        return CheckResult.failed(
            f"The storefront served {attempts} requests for {seen.count} visits: no request was tried again.",
            "retryOn must include 5xx (the storefront answers 503 when stock's call is aborted).",
            f"This step's timeout and retries: {_apply_file(ROUTE_RESILIENT)}.",
            **evidence,
        )
    return CheckResult.passed(
        f"{seen.ok} of {seen.count} visitors got an answer, none waited past the timeout (p90 "
        f"{seen.percentile(0.9):.2f} s); the storefront served {attempts} tries for them (retries, in its metrics).",
        **evidence,
    )


storefront_recovers.solution(partial(apply_lesson, name=ROUTE_RESILIENT))


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
            "`kubectl get authorizationpolicies`: an ALLOW policy selecting the app lets in only the identities "
            "its rules name.",
            f"Allow only the storefront's identity at stock and balance: {_apply_file(POLICIES)}.",
            **evidence,
        )
    if RBAC_DENIED not in refund.text:
        return CheckResult.failed(
            f"balance refused the refund, but not with Istio's answer ({refund.text[:80]!r}).",
            "Let the AuthorizationPolicy refuse it (403 RBAC: access denied): `kubectl get authorizationpolicies`.",
            f"The lab's policies: {_apply_file(POLICIES)}.",
            **evidence,
        )
    user = f"mesh-{secrets.token_hex(3)}"
    opened = through_gateway("POST", "/api/users", json={"name": user}, connection=ctx)
    evidence["new account through the storefront"] = f"{opened.status_code} {opened.text[:80]}"
    if opened.status_code != 201:
        return _storefront_refused(ctx, evidence)
    return CheckResult.passed(
        "A direct refund from the notebook got 403 RBAC: access denied, and the storefront opened an account "
        "at balance.",
        **evidence,
    )


internal_endpoints_locked.solution(partial(apply_lesson, name=POLICIES))


def _storefront_refused(ctx: Context, evidence: dict[str, object]) -> CheckResult:
    """FAILED naming the policy that keeps the storefront's own calls out of balance, when one does."""
    storefront = f"cluster.local/ns/{ctx.namespace}/sa/storefront"
    group, version = SECURITY
    policies: Any = ctx.custom.list_namespaced_custom_object(group, version, ctx.namespace, "authorizationpolicies")
    at_balance = [p for p in policies["items"] if _selects(p, {"app": "balance"})]
    denying = [p for p in at_balance if p["spec"].get("action") == "DENY" and _matches_caller(p, storefront, ctx)]
    allowing = [p for p in at_balance if p["spec"].get("action", "ALLOW") == "ALLOW"]
    look = "`kubectl get authorizationpolicies -o yaml` (selector, action, rules[].from[].source)"
    if denying:
        name = denying[0]["metadata"]["name"]
        return CheckResult.failed(
            f"The AuthorizationPolicy {name} denies the storefront's identity ({storefront}) at balance: the "
            "storefront itself can no longer open an account.",
            look,
            f"Remove it: `kubectl delete authorizationpolicy {name}`.",
            **evidence,
        )
    if allowing and not any(_matches_caller(p, storefront, ctx) for p in allowing):
        rules = {p["metadata"]["name"]: p["spec"].get("rules") for p in allowing}
        return CheckResult.failed(
            f"No ALLOW policy at balance lets the storefront's identity ({storefront}) in "
            f"({', '.join(sorted(rules))} allow{'s' if len(rules) == 1 else ''} others): the storefront itself can "
            "no longer open an account.",
            look,
            f"Allow the storefront (serviceAccounts: [storefront]): {_apply_file(POLICIES)}.",
            rules=rules,
            **evidence,
        )
    return CheckResult.failed(
        "The storefront itself can no longer open an account through the gateway.",
        "What it answered is in the evidence; `kubectl get pods -l app=storefront` and "
        "`kubectl get deployment storefront -o jsonpath={.spec.template.spec.serviceAccountName}` (storefront).",
        f"The lab's policies: {_apply_file(POLICIES)}.",
        **evidence,
    )


def _selects(policy: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    wanted = ((policy.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return dict(wanted).items() <= dict(labels).items()


def _matches_caller(policy: Mapping[str, Any], principal: str, ctx: Context) -> bool:
    """Whether a rule of `policy` matches calls from `principal`, by their source alone (as Envoy's RBAC would)."""
    service_account = principal.rsplit("/", 1)[-1]
    for rule in (policy.get("spec") or {}).get("rules") or []:
        sources = [entry.get("source") or {} for entry in rule.get("from") or []] or [{}]
        for source in sources:
            principals = source.get("principals")
            accounts = source.get("serviceAccounts")
            namespaces = source.get("namespaces")
            if (
                (principals is None or any(_istio_match(p, principal) for p in principals))
                and (
                    accounts is None
                    or any(a in (service_account, f"{ctx.namespace}/{service_account}") for a in accounts)
                )
                and (namespaces is None or any(_istio_match(n, ctx.namespace) for n in namespaces))
            ):
                return True
    return False


def _istio_match(pattern: str, value: str) -> bool:
    """Istio's string match: exact, a prefix (`abc*`), a suffix (`*abc`) or anything (`*`)."""
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


# --- 05.8 --------------------------------------------------------------------------------------


@check("05.8", title="The release is done: v2 serves every visitor", timeout=120)
def v2_for_everyone(ctx: Context) -> CheckResult:
    return judge_routes(ctx, ROUTE_V2, partial(_released_to_v2, ctx))


def _released_to_v2(ctx: Context, service: Mapping[str, Any]) -> CheckResult:
    weights = default_weights(service)
    if weights.get("v2") != 100:
        return CheckResult.failed(
            f"The storefront's rule for everyone sends {_shares(weights)}: v1 still serves visitors.",
            "`kubectl get virtualservice storefront -o yaml` (the weights of the rule without match)",
            f"Send everyone to v2: {_apply_file(ROUTE_V2)}.",
            weights=weights,
        )
    return measure_split(ctx, 30, weights, ROUTE_V2)


v2_for_everyone.solution(partial(apply_lesson, name=ROUTE_V2))


# --- 05.9: the fix-it challenge ------------------------------------------------------------------


def start_challenge(ctx: Context) -> None:
    """A colleague's change goes live (the notebook's challenge cell runs this)."""
    challenges.mark_started(ctx, CHALLENGE)
    subsets = [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2.0"}}]
    group, version = NETWORKING
    ctx.custom.patch_namespaced_custom_object(
        group, version, ctx.namespace, "destinationrules", "storefront", {"spec": {"subsets": subsets}}
    )


@check(CHALLENGE, title="Challenge: the bookstore answers its visitors again", timeout=60)
def challenge_fixed(ctx: Context) -> CheckResult:
    if not challenges.started(ctx, CHALLENGE):
        return CheckResult.failed(
            "The challenge has not started yet.",
            "It is the lab's last section: its cell makes a colleague's change go live, then you find what broke.",
            "Start it as the challenge cell does: `from checkers.lab05_mesh import start_challenge; "
            "start_challenge(ctx)`, then look at what visitors get.",
        )
    seen = burst(ctx, 20, path="/")
    if seen.ok == seen.count:
        return CheckResult.passed(f"All {seen.count} visitors got the page again.", **seen.evidence())
    # The symptom first; the ladder climbs to the cause and its fix, as read from the objects.
    cause = _gateway_problem(ctx, ROUTE_V2)
    return CheckResult.failed(
        f"{seen.count - seen.ok} of {seen.count} visitors got an error page instead of the bookstore.",
        "Read what answered (the error bodies in the evidence are Envoy's own words); then compare what the route's "
        "destination asks for with the pods there are: `kubectl get virtualservice,destinationrule storefront -o yaml` "
        "and `kubectl get pods -l app=storefront --show-labels`.",
        *((cause.message, cause.hints[-1]) if cause else (f"The lab's subsets: {_apply_file(SUBSETS)}.",)),
        **seen.evidence(),
    )


@challenge_fixed.solution
def fix_challenge(ctx: Context) -> None:
    if not challenges.started(ctx, CHALLENGE):
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
    challenges.forget(ctx, "05")


def reset(ctx: Context) -> None:
    """Remove the lab's mesh objects, its Deployments (v1 and v2), Services, claims and ServiceAccounts,
    and take the namespace out of the mesh."""
    remove_lessons(ctx)
    for name in SERVICES:
        ignore_missing(partial(ctx.core.delete_namespaced_service_account, name, ctx.namespace))
    delete_lab_objects(ctx, LAB_ID)
    ctx.core.patch_namespace(ctx.namespace, {"metadata": {"labels": {INJECTION_LABEL: None}}})
