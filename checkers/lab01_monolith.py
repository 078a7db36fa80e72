"""Lab 01, monolith: deploy the bookstore as one Deployment with a volume and a Service, then buy books.

The helpers that look at Deployments, Services and the shop's books and accounts are shared with
lab 02, which asks the same questions of three microservices. The notebook applies the same
kustomize overlay (infra/overlays/01-monolith) and makes the same calls as `solve` below.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
from kubernetes.client import V1ConfigMapEnvSource, V1Container, V1Deployment, V1EnvFromSource, V1EnvVar, V1Pod
from kubernetes.client.exceptions import ApiException

from bookstore.catalog import INITIAL_BALANCE, INITIAL_STOCK
from checkers import challenges, history
from checkers._api import ignore_missing, read_or_none
from checkers._context import Context
from checkers._registry import check
from checkers._result import CheckResult
from checkers._runner import observe
from checkers.challenges import challenge
from checkers.diagnosis import (
    Problem,
    answer_of,
    await_service,
    await_workload,
    diagnose_service,
    diagnose_workload,
    how_to_create,
    reapply_fix,
)
from checkers.diagnosis._fields import meta, name_of, pod_spec, uid_of
from labkit._apply import apply
from labkit.admin import ADMIN_SECRET, ensure_admin_secret
from labkit.kustomize import overlay
from labkit.settings import PROJECT_IMAGE

LAB_ID = "01-monolith"
APP = "monolith"
#: The kinds the labs' overlays hold, in the order reset removes them.
LAB_KINDS = ("Deployment", "Service", "PersistentVolumeClaim")
DATA_DIR_VARIABLE = "BOOKSTORE_DATA_DIR"
HEALTH_PATH = "/health"
PURCHASE_OPERATION = "POST /api/purchase"

#: The attendee's account in both labs, and what the solution buys and tries in vain to buy.
BUYER = "ada"
PURCHASE = {"user": BUYER, "book": "00002", "count": 2}
#: Refused for two reasons: a book the shop does not sell, and more money than the buyer has
#: (9 000 copies of ¥128 cost ¥1 152 000) while the shelf holds enough copies.
BAD_PURCHASES = (
    {"user": BUYER, "book": "99999", "count": 1},
    {"user": BUYER, "book": "00003", "count": 9_000},
)


# The admin Secret holds a random token: it is made, not applied from a manifest.
how_to_create(
    "Secret",
    ADMIN_SECRET,
    "Create it from the notebook: `labkit.ensure_admin_secret()`; the pods that mount it then start by themselves.",
)


def service_url(name: str) -> str:
    return f"http://{name}"


# --- Deployments and their pods ------------------------------------------------------------------


@dataclass(frozen=True)
class PodState:
    """One pod of a Deployment as the checks saw it."""

    name: str
    uid: str
    ready: bool
    restarts: int
    started_at: str | None
    waiting: str | None

    def evidence(self) -> dict[str, object]:
        return {"pod": self.name, "uid": self.uid, "ready": self.ready, "restarts": self.restarts}


@dataclass(frozen=True)
class WorkloadState:
    """One Deployment: whether it exists, what its pod template promises, and its pods."""

    name: str
    exists: bool
    labels: dict[str, str] = field(default_factory=dict)
    probes: tuple[str, ...] = ()
    data_volume: str | None = None
    persistent: bool = False
    environment: dict[str, str] = field(default_factory=dict)
    pods: tuple[PodState, ...] = ()

    @property
    def ready_pods(self) -> list[PodState]:
        return [pod for pod in self.pods if pod.ready]

    def evidence(self) -> dict[str, object]:
        return {
            "deployment": self.name,
            "exists": self.exists,
            "template labels": self.labels,
            "probes on /health": list(self.probes),
            "data volume": self.data_volume,
            "pods": [pod.evidence() for pod in self.pods],
        }


def look_at_deployment(ctx: Context, name: str) -> WorkloadState:
    """The Deployment `name` and its live pods (a missing Deployment is a state, not an error)."""
    try:
        deployment: V1Deployment = ctx.apps.read_namespaced_deployment(name, ctx.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return WorkloadState(name, exists=False)
        raise
    template = deployment.spec.template
    container = first_container(deployment)
    environment = {env.name: env.value for env in container.env or [] if env.value is not None}
    probes = tuple(
        kind
        for kind, probe in (("readiness", container.readiness_probe), ("liveness", container.liveness_probe))
        if probe is not None and probe.http_get is not None and probe.http_get.path == HEALTH_PATH
    )
    data_volume, persistent = _data_volume(pod_spec(template), container, environment.get(DATA_DIR_VARIABLE))
    selector = ",".join(f"{key}={value}" for key, value in (deployment.spec.selector.match_labels or {}).items())
    pods = ctx.core.list_namespaced_pod(ctx.namespace, label_selector=selector).items
    return WorkloadState(
        name=name,
        exists=True,
        labels=dict(meta(template).labels or {}),
        probes=probes,
        data_volume=data_volume,
        persistent=persistent,
        environment=environment,
        pods=tuple(_pod_state(pod) for pod in pods if meta(pod).deletion_timestamp is None),
    )


def _data_volume(spec: Any, container: Any, data_dir: str | None) -> tuple[str | None, bool]:
    """The volume mounted where BOOKSTORE_DATA_DIR points, and whether it is a PersistentVolumeClaim."""
    if not data_dir:
        return None, False
    mount = next((m for m in container.volume_mounts or [] if m.mount_path.rstrip("/") == data_dir.rstrip("/")), None)
    if mount is None:
        return None, False
    volume = next((v for v in spec.volumes or [] if v.name == mount.name), None)
    return mount.name, volume is not None and volume.persistent_volume_claim is not None


def _pod_state(pod: V1Pod) -> PodState:
    status = pod.status
    conditions = {c.type: c.status for c in (status.conditions or [])} if status else {}
    containers = (status.container_statuses or []) if status else []
    first = containers[0] if containers else None
    running = first.state.running if first and first.state else None
    waiting = first.state.waiting if first and first.state else None
    return PodState(
        name=name_of(pod),
        uid=uid_of(pod),
        ready=conditions.get("Ready") == "True",
        restarts=first.restart_count if first else 0,
        started_at=running.started_at.isoformat() if running and running.started_at else None,
        waiting=(f"{waiting.reason}: {waiting.message}" if waiting.message else waiting.reason) if waiting else None,
    )


def template_problem(seen: WorkloadState, *, persistent: bool) -> CheckResult | None:
    """How a Deployment's pod template differs from what the lab asks for, or None when it does not."""
    name = seen.name
    look = f"`kubectl get deployment {name} -o yaml` (spec.template)"
    fix = reapply_fix(name)
    missing_labels = [key for key in ("app", "version") if key not in seen.labels]
    if missing_labels:
        return CheckResult.failed(
            f"The pods of {name!r} carry no {' and no '.join(missing_labels)} label: Services select by `app`, "
            "and `version` tells versions apart when traffic is split.",
            look,
            fix,
            **seen.evidence(),
        )
    if len(seen.probes) < 2:
        return CheckResult.failed(
            f"{name!r} does not probe {HEALTH_PATH} for both readiness and liveness (it has: {list(seen.probes)}): "
            "without them Kubernetes sends traffic to a pod before it can serve, and never restarts one that hangs.",
            look,
            fix,
            **seen.evidence(),
        )
    if seen.data_volume is None:
        return CheckResult.failed(
            f"{name!r} keeps its database where {DATA_DIR_VARIABLE} points, but no volume is mounted there.",
            look,
            fix,
            **seen.evidence(),
        )
    if persistent and not seen.persistent:
        return CheckResult.failed(
            f"{name!r} mounts volume {seen.data_volume!r}, but it is not a PersistentVolumeClaim: what it "
            "keeps there (books sold, accounts, tc's transaction log) would vanish with the pod.",
            look,
            fix,
            **seen.evidence(),
        )
    return None


def deployments_ready(ctx: Context, names: Sequence[str], *, persistent: bool = False) -> CheckResult:
    """PASSED when every named Deployment is as the lab asks and has a Ready pod.

    Waits only while a pod is on its way; anything that waiting cannot mend is FAILED at once, with the
    cause `kubectl describe` shows.
    """
    for name in names:
        state = look_at_deployment(ctx, name)
        if not state.exists:
            return diagnose_workload(ctx, name).failed()
        problem = template_problem(state, persistent=persistent)
        if problem:
            return problem
    workloads = await_workload(ctx, *names)
    if not workloads.ready:
        return workloads.failed()
    seen = [look_at_deployment(ctx, name) for name in names]
    listed = ", ".join(f"{state.name} ({len(state.ready_pods)} Ready)" for state in seen)
    return CheckResult.passed(
        f"Deployed with probes, labels and a data volume, and Ready: {listed}.",
        **{state.name: state.evidence() for state in seen},
    )


# --- Services --------------------------------------------------------------------------------------


def services_reachable(ctx: Context, names: Sequence[str]) -> CheckResult:
    """PASSED when each named Service reaches Ready pods and its own app answers /health through it."""
    reachable = await_service(ctx, *names, path=HEALTH_PATH)
    if not reachable.ready:
        return reachable.failed()
    answered: list[str] = []
    for name in names:
        found = diagnose_service(ctx, name, path=HEALTH_PATH)
        if not found.ready:  # it was a moment ago: say what changed
            return found.failed()
        answer = found.answer
        health = answer.document if answer is not None and answer.ok and isinstance(answer.document, dict) else {}
        if health.get("service") != name:
            who = f"the {health['service']} service" if health.get("service") else f"{answer.status if answer else '?'}"
            return CheckResult.failed(
                f"{service_url(name)}{HEALTH_PATH} answered as {who}, not as the {name} service: the Service "
                f"sends its traffic to other pods than {name}'s.",
                f"`kubectl describe service {name}` (Selector, Endpoints) against `kubectl get pods --show-labels`",
                f"Select the {name} pods: `kubectl set selector service {name} app={name}`.",
                **found.evidence,
            )
        answered.append(f"{service_url(name)} → {', '.join(found.evidence.get('endpoints', []))}")
    return CheckResult.passed("Reachable through their Services: " + "; ".join(answered))


# --- The shop: books, accounts and the invariants --------------------------------------------------


@dataclass(frozen=True)
class ShopState:
    """The books on the shelf and the buyer's account, as the public API shows them."""

    books: dict[str, dict[str, Any]]
    buyer: dict[str, Any] | None

    @property
    def bought(self) -> int:
        return sum(book["count"] for book in self.buyer["books"]) if self.buyer else 0

    def invariant_breaks(self) -> list[str]:
        """Each way stock or money moved other than the invariants say, in words."""
        broken = [
            f"book {book_id}: {INITIAL_STOCK} − stock {book['stock']} = {INITIAL_STOCK - book['stock']}, "
            f"but {book['sold']} were sold"
            for book_id, book in sorted(self.books.items())
            if INITIAL_STOCK - book["stock"] != book["sold"]
        ]
        if self.buyer:
            spent = INITIAL_BALANCE - self.buyer["balance"]
            owed = sum(self.books[owned["id"]]["price"] * owned["count"] for owned in self.buyer["books"])
            if spent != owed:
                broken.append(f"{BUYER} spent {spent} fen, but the books {BUYER} owns cost {owed} fen")
        return broken

    def evidence(self) -> dict[str, object]:
        shelf = {book_id: f"{book['stock']}/{book['sold']}" for book_id, book in sorted(self.books.items())}
        return {"books (id: stock/sold)": shelf, BUYER: self.buyer}


class ShopUnreachable(Exception):
    """The shop did not answer through its Service: an earlier step is not done (or was undone).

    That is the attendee's to fix, so it becomes FAILED with the cause (the Service's diagnosis, or that
    of the service the shop could not reach), not an ERROR.
    """

    def __init__(self, url: str, response: httpx.Response) -> None:
        super().__init__(f"{url} answered {response.status_code}")
        self.url = url
        self.response = response

    def result(self, ctx: Context) -> CheckResult:
        answer = answer_of(self.response.status_code, self.response.text)
        document = answer.document if isinstance(answer.document, dict) else {}
        # A bookstore service that could not reach another says which (`dependency`); else its own Service.
        name = str(document.get("dependency") or httpx.URL(self.url).host)
        found = diagnose_service(ctx, name, path=HEALTH_PATH)
        if not found.ready:
            return found.failed()
        return CheckResult.failed(
            f"{self.url} does not answer ({answer.status}: {answer.text}).",
            "Run this lab's earlier checks again: the first one that fails says which step to do again.",
            status=answer.status,
        )


def shop_get(ctx: Context, url: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """GET a shop path; a 502/503/504 (from the service network or the shop) means the shop is not reachable."""
    response = ctx.http.get(f"{url}{path}", headers=headers)
    if response.status_code in (502, 503, 504):
        raise ShopUnreachable(url, response)
    return response


def look_at_shop(ctx: Context, url: str) -> ShopState:
    books = shop_get(ctx, url, "/api/books")
    books.raise_for_status()
    account = shop_get(ctx, url, f"/api/users/{BUYER}")
    if account.status_code != 404:
        account.raise_for_status()
    return ShopState(
        books={book["id"]: book for book in books.json()["books"]},
        buyer=account.json() if account.status_code == 200 else None,
    )


def purchase_kept_invariants(ctx: Context, url: str) -> CheckResult:
    """PASSED when the buyer owns books and stock and money moved exactly by what was bought."""
    try:
        shop = look_at_shop(ctx, url)
    except ShopUnreachable as unreachable:
        return unreachable.result(ctx)
    open_account = f'`ctx.http.post("{url}/api/users", json={{"name": "{BUYER}"}})`'
    buy_books = f'`ctx.http.post("{url}/api/purchase", json={json.dumps(PURCHASE)})`'
    if shop.buyer is None:
        return CheckResult.failed(
            f"There is no user {BUYER!r} at {url} yet: the checks look at {BUYER}'s account.",
            f"Open the account with POST {url}/api/users, then buy with POST {url}/api/purchase.",
            f"In the notebook: {open_account}, then {buy_books}.",
            **shop.evidence(),
        )
    if not shop.bought:
        return CheckResult.failed(
            f"{BUYER!r} has an account but has not bought any book yet.",
            f"Buy with POST {url}/api/purchase: the user, a book id (00001 … 00005) and a count.",
            f"In the notebook: {buy_books}.",
            **shop.evidence(),
        )
    broken = shop.invariant_breaks()
    if broken:
        return CheckResult.failed(
            "Stock or money moved differently from what was bought: " + "; ".join(broken) + ".",
            "Every copy sold must leave the shelf and every fen paid must buy a book. Look at the purchases "
            "that failed half-way in the service's logs (`kubectl logs deployment/NAME`): this should not happen "
            "without a fault.",
            **shop.evidence(),
        )
    return CheckResult.passed(
        f"{BUYER} bought {shop.bought} book(s); for every book 10000 − stock = sold, and {BUYER}'s balance fell by "
        "exactly the price of the books bought.",
        **shop.evidence(),
    )


#: The refusals step "bad purchases" asks for, by the code the shop refuses them with, in words.
REQUIRED_REFUSALS = {
    "unknown_book": "a book that does not exist",
    "insufficient_balance": f"more copies than {BUYER} can pay for",
}


def refused_purchases(ctx: Context, url: str) -> list[str]:
    """The code of each purchase the shop refused (4xx), from the spans it still remembers."""
    answer = shop_get(ctx, url, "/debug/spans")
    answer.raise_for_status()
    return [
        span.get("error_type") or str(span["status"])
        for span in answer.json()["spans"]
        if span["operation"] == PURCHASE_OPERATION and 400 <= span["status"] < 500
    ]


def bad_purchases_changed_nothing(ctx: Context, url: str, check_id: str) -> CheckResult:
    """PASSED when the shop refused both kinds of bad purchase and the invariants still hold.

    The refusals are read from the shop's spans, which its pod keeps in memory: what a pass saw is
    remembered (checkers.history), so replacing the pod later does not undo the step.
    """
    try:
        refused = refused_purchases(ctx, url)
        shop = look_at_shop(ctx, url)
    except ShopUnreachable as unreachable:
        return unreachable.result(ctx)
    missing = [words for code, words in REQUIRED_REFUSALS.items() if code not in refused]
    serving = _serving_pod(ctx, url)
    remembered = history.recall(ctx, check_id, serving) if missing else None
    if remembered is not None:
        refused = list(remembered["refused"])
        missing = []
    if missing:
        seen = f"it refused: {', '.join(sorted(set(refused)))}" if refused else "it has refused no purchase"
        tries = {
            "unknown_book": {"user": BUYER, "book": "99999", "count": 1},
            "insufficient_balance": {"user": BUYER, "book": "00003", "count": 9_000},
        }
        calls = ", then ".join(
            f'`ctx.http.post("{url}/api/purchase", json={json.dumps(tries[code])})`'
            for code in REQUIRED_REFUSALS
            if code not in refused
        )
        return CheckResult.failed(
            f"{url} has not yet refused a purchase of {', nor one of '.join(missing)} ({seen}).",
            "Try what the shop must refuse: a book id that is not on the shelf (00001 … 00005 are), and more "
            f"copies than {BUYER}'s ¥1 000 000 pay for while the shelf has enough of them.",
            f"In the notebook: {calls}.",
            refused=refused,
            **shop.evidence(),
        )
    broken = shop.invariant_breaks()
    if broken:
        return CheckResult.failed(
            "A refused purchase left traces: " + "; ".join(broken) + ".",
            "A refusal must happen before any stock or money moves, or undo what moved: look at the service's "
            "logs (`kubectl logs deployment/NAME`).",
            refused=refused,
            **shop.evidence(),
        )
    if remembered is None and serving is not None:
        history.remember(ctx, check_id, serving, {"refused": refused})
    earlier = " (seen by the pod before this one: the spans went with it)" if remembered is not None else ""
    return CheckResult.passed(
        f"{len(refused)} purchase(s) refused ({', '.join(sorted(set(refused)))}){earlier}, and no copy or fen moved "
        "for them.",
        refused=refused,
        **shop.evidence(),
    )


def _serving_pod(ctx: Context, url: str) -> str | None:
    """The uid of the Ready pod behind `http://<app>` (the Deployment named as the Service)."""
    ready = look_at_deployment(ctx, str(httpx.URL(url).host)).ready_pods
    return ready[0].uid if ready else None


# --- What the solution does ------------------------------------------------------------------------


def create_buyer(ctx: Context, url: str) -> None:
    """Open the buyer's account; one that already exists (409) is fine."""
    answer = ctx.http.post(f"{url}/api/users", json={"name": BUYER})
    if answer.status_code != 409:
        answer.raise_for_status()


def buy(ctx: Context, url: str, purchase: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    """POST one purchase and return the answer as it came (a refusal is an answer, not an error)."""
    return ctx.http.post(f"{url}/api/purchase", json=purchase, headers=headers)


def apply_kinds(ctx: Context, lab_id: str, kinds: Iterable[str]) -> None:
    apply(overlay(lab_id, kinds=kinds), connection=ctx)


class NotReady(RuntimeError):
    """A solution step's workload or Service did not become ready: the diagnosis says why."""


def wait_until_ready(ctx: Context, names: Iterable[str], timeout: float = 120) -> None:
    """Wait until each Deployment has a Ready pod (the steps after this one call its pods); fail fast if stuck."""
    found = await_workload(ctx, *names, timeout=timeout)
    if not found.ready:
        raise NotReady(found.summary)


def wait_until_reachable(ctx: Context, names: Iterable[str], timeout: float = 60) -> None:
    """Wait until each Service answers /health: Endpoints follow readiness a moment later."""
    found = await_service(ctx, *names, path=HEALTH_PATH, timeout=timeout)
    if not found.ready:
        raise NotReady(found.summary)


# --- Lab 01's checks -----------------------------------------------------------------------------

MONOLITH = service_url(APP)


@check("01.1", title="The monolith is deployed with a volume, and Ready", timeout=90)
def monolith_ready(ctx: Context) -> CheckResult:
    return deployments_ready(ctx, [APP], persistent=True)


@monolith_ready.solution
def deploy_monolith(ctx: Context) -> None:
    ensure_admin_secret(ctx)
    apply_kinds(ctx, LAB_ID, ["PersistentVolumeClaim", "Deployment"])
    wait_until_ready(ctx, [APP])


@check("01.2", title="The monolith answers through its Service", timeout=60)
def monolith_reachable(ctx: Context) -> CheckResult:
    return services_reachable(ctx, [APP])


@monolith_reachable.solution
def expose_monolith(ctx: Context) -> None:
    apply_kinds(ctx, LAB_ID, ["Service"])
    wait_until_reachable(ctx, [APP])


@check("01.3", title="A purchase moved stock and money exactly", timeout=30)
def monolith_purchase(ctx: Context) -> CheckResult:
    return purchase_kept_invariants(ctx, MONOLITH)


@monolith_purchase.solution
def buy_from_monolith(ctx: Context) -> None:
    create_buyer(ctx, MONOLITH)
    buy(ctx, MONOLITH, PURCHASE).raise_for_status()


@check("01.4", title="Bad purchases were refused and changed nothing", timeout=30)
def monolith_refusals(ctx: Context) -> CheckResult:
    return bad_purchases_changed_nothing(ctx, MONOLITH, "01.4")


@monolith_refusals.solution
def try_bad_purchases(ctx: Context) -> None:
    for purchase in BAD_PURCHASES:
        buy(ctx, MONOLITH, purchase)


# --- 01.5: the fix-it challenge ------------------------------------------------------------------

#: The ConfigMap the challenge moves the monolith's settings into, and the one it leaves out.
SETTINGS_CONFIGMAP = "monolith-settings"
MOVED_SETTINGS = {"BOOKSTORE_VERSION": "VERSION", "BOOKSTORE_RANKING": "RANKING"}
SETTINGS_GIVEN = {"VERSION": "v2"}
MISSING_SETTING = {"data": {"RANKING": "by-sales"}}
READ_SETTINGS = [
    {
        "op": "add",
        "path": "/spec/template/spec/containers/0/envFrom",
        "value": [{"configMapRef": {"name": SETTINGS_CONFIGMAP}}],
    }
]


def _compact(document: object) -> str:
    """JSON as a kubectl -p argument: no spaces, so it survives being typed in quotes."""
    return json.dumps(document, separators=(",", ":"))


@challenge(
    "01.5",
    title="Challenge: the shop is down since its settings moved",
    story=(
        f"The shop's owner moved the monolith's settings into a ConfigMap, `{SETTINGS_CONFIGMAP}`, and rolled "
        "the monolith out again. Since then the shop is down: http://monolith does not answer, and customers "
        f"cannot buy. Bring it back, with its settings kept in `{SETTINGS_CONFIGMAP}`, and without losing "
        "anybody's books or money."
    ),
    timeout=60,
)
def shop_is_back(ctx: Context) -> CheckResult:
    state = look_at_deployment(ctx, APP)
    if not state.exists:
        return diagnose_workload(ctx, APP).failed(symptom="The shop is still down: there is no monolith at all.")
    if not _reads_settings_from_configmap(ctx):
        return CheckResult.failed(
            f"The monolith no longer takes its settings from the ConfigMap {SETTINGS_CONFIGMAP!r}.",
            f"The owner wants them there: look at `kubectl get deployment {APP} -o yaml` (the container's envFrom).",
            f"Read them from it again: `kubectl patch deployment {APP} --type=json -p '{_compact(READ_SETTINGS)}'`.",
        )
    workload = await_workload(ctx, APP)
    if not workload.ready:
        return workload.failed(
            symptom="The shop is still down: the monolith has no Ready pod.",
            fixes={
                Problem.CRASH_LOOP: (
                    "Give the setting it lacks to the ConfigMap, then restart the pods so they read it: "
                    f"`kubectl patch configmap {SETTINGS_CONFIGMAP} -p '{_compact(MISSING_SETTING)}'`, then "
                    f"`kubectl rollout restart deployment {APP}`."
                )
            },
        )
    service = await_service(ctx, APP, path=HEALTH_PATH)
    if not service.ready:
        return service.failed(symptom="The shop is still down: http://monolith does not answer.")
    try:
        shop = look_at_shop(ctx, MONOLITH)
    except ShopUnreachable as unreachable:
        return unreachable.result(ctx)
    if shop.buyer is None or not shop.bought:
        return CheckResult.failed(
            f"The shop answers again, but {BUYER}'s account and books are gone: the monolith lost its data.",
            "Its database lives on the claim `monolith-data`: a new or emptied claim starts an empty shop.",
            "Start lab 01 again with its data: `lab reset 01`, then run the notebook from the top.",
            **shop.evidence(),
        )
    return CheckResult.passed(
        f"The shop is back: the monolith reads its settings from {SETTINGS_CONFIGMAP!r}, is Ready, answers, and "
        f"{BUYER} still owns {shop.bought} book(s).",
        **shop.evidence(),
    )


def first_container(deployment: V1Deployment) -> V1Container:
    """The Deployment's first container (the lab's pods have one)."""
    if deployment.spec is None:
        raise ValueError(f"Deployment {name_of(deployment)!r} without spec")
    return pod_spec(deployment.spec.template).containers[0]


def _reads_settings_from_configmap(ctx: Context) -> bool:
    container = first_container(ctx.apps.read_namespaced_deployment(APP, ctx.namespace))
    sources = container.env_from or []
    return any(source.config_map_ref and source.config_map_ref.name == SETTINGS_CONFIGMAP for source in sources)


@shop_is_back.breaks
def move_settings_to_a_configmap(ctx: Context) -> None:
    """The owner's change: settings in a ConfigMap, read through `$(VAR)` references; one was forgotten.

    The rollout replaces the pod, and with it the spans 01.4 reads its refusals from: 01.4 looks first,
    so what it sees is remembered (checkers.history) even when its cell was never run (`lab solve 01`).
    """
    bad_purchases_changed_nothing(ctx, MONOLITH, "01.4")
    apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": SETTINGS_CONFIGMAP}, "data": SETTINGS_GIVEN},
        connection=ctx,
    )
    deployment: V1Deployment = ctx.apps.read_namespaced_deployment(APP, ctx.namespace)
    container = first_container(deployment)
    kept = [variable for variable in container.env or [] if variable.name not in MOVED_SETTINGS]
    container.env = kept + [V1EnvVar(name=name, value=f"$({key})") for name, key in MOVED_SETTINGS.items()]
    container.env_from = [V1EnvFromSource(config_map_ref=V1ConfigMapEnvSource(name=SETTINGS_CONFIGMAP))]
    ctx.apps.replace_namespaced_deployment(APP, ctx.namespace, deployment)


@shop_is_back.solution
def give_the_missing_setting(ctx: Context) -> None:
    ctx.core.patch_namespaced_config_map(SETTINGS_CONFIGMAP, ctx.namespace, MISSING_SETTING)
    restart_pods(ctx, APP)
    wait_until_ready(ctx, [APP])
    wait_until_reachable(ctx, [APP])


def restart_pods(ctx: Context, name: str) -> None:
    """What `kubectl rollout restart` does: a new pod-template annotation, so the Deployment replaces its pods."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
    ctx.apps.patch_namespaced_deployment(name, ctx.namespace, patch)


# --- Reset -----------------------------------------------------------------------------------------


def delete_lab_objects(ctx: Context, lab_id: str) -> None:
    """Delete what the lab's overlay names (found by kind and name, so hand-written copies go too).

    Deployments and Services first; claims once the pods that mount them are gone.
    """
    objects = overlay(lab_id)
    namespace = ctx.namespace
    names = {kind: [obj["metadata"]["name"] for obj in objects if obj["kind"] == kind] for kind in LAB_KINDS}
    for name in names["Deployment"]:
        ignore_missing(partial(ctx.apps.delete_namespaced_deployment, name, namespace))
    for name in names["Service"]:
        ignore_missing(partial(ctx.core.delete_namespaced_service, name, namespace))
    app_selector = f"app in ({','.join(names['Deployment'])})"
    gone = observe(
        lambda: ctx.core.list_namespaced_pod(namespace, label_selector=app_selector).items,
        lambda pods: not pods,
        timeout=60,
    )
    if not gone.reached:
        raise TimeoutError(f"pods of {', '.join(names['Deployment'])} were still there 60s after their deletion")
    for name in names["PersistentVolumeClaim"]:
        if read_or_none(partial(ctx.core.read_namespaced_persistent_volume_claim, name, namespace)) is not None:
            empty_claim(ctx, name)
            ignore_missing(partial(ctx.core.delete_namespaced_persistent_volume_claim, name, namespace))


#: What the emptying pod runs: remove everything under $DATA, keep the directory.
EMPTY_DIRECTORY = """
import os, shutil
from pathlib import Path
for entry in Path(os.environ["DATA"]).iterdir():
    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
"""


def empty_claim(ctx: Context, claim: str) -> None:
    """Delete the files on a claim with a short-lived pod, so the lab starts again with an empty shop.

    Deleting the claim alone is not enough everywhere: on a real cluster, a StorageClass with
    reclaimPolicy Retain would hand the old database to the next claim.
    """
    pod_name = f"empty-{claim}"
    apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "labels": {"app": pod_name}},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
                "containers": [
                    {
                        "name": "empty",
                        "image": PROJECT_IMAGE,
                        "command": ["python", "-c", EMPTY_DIRECTORY],
                        "env": [{"name": "DATA", "value": "/data"}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
                    }
                ],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
            },
        },
        connection=ctx,
    )
    finished = observe(
        lambda: _phase(ctx.core.read_namespaced_pod(pod_name, ctx.namespace)),
        lambda phase: phase in ("Succeeded", "Failed"),
        timeout=60,
    )
    ignore_missing(lambda: ctx.core.delete_namespaced_pod(pod_name, ctx.namespace, grace_period_seconds=0))
    if finished.value != "Succeeded":
        raise RuntimeError(f"emptying claim {claim!r} did not succeed (pod {pod_name} ended {finished.value})")


def _phase(pod: V1Pod) -> str | None:
    return pod.status.phase if pod.status else None


def reset(ctx: Context) -> None:
    """Remove the monolith, its Service, its volume claim and what the challenge added."""
    delete_lab_objects(ctx, LAB_ID)
    ignore_missing(lambda: ctx.core.delete_namespaced_config_map(SETTINGS_CONFIGMAP, ctx.namespace))
    challenges.forget(ctx, "01")
    history.forget(ctx, "01")
