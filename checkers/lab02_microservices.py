"""Lab 02, microservices: storefront, stock and balance, each with its own Deployment and Service.

The attendee deploys the three services (infra/overlays/02-microservices), buys through the
storefront, follows one purchase across the services by its W3C trace, and switches the ranking
strategy as a dynamic module while the storefront's pod keeps running. The deployment, service
and shop checks are lab 01's, asked of three services instead of one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from bookstore.calltree import SpanNode, collect_trace
from bookstore.models import Book
from bookstore.modules.host import BUNDLED_MODULES, LoadedModule, bundled_source, load_module
from checkers import challenges, history
from checkers._context import Context
from checkers._registry import check
from checkers._result import CheckResult
from checkers.challenges import challenge
from checkers.diagnosis import answer_of, await_service, reapply_fix
from checkers.lab01_monolith import (
    BAD_PURCHASES,
    BUYER,
    HEALTH_PATH,
    PURCHASE,
    PURCHASE_OPERATION,
    PodState,
    ShopUnreachable,
    apply_kinds,
    bad_purchases_changed_nothing,
    buy,
    create_buyer,
    delete_lab_objects,
    deployments_ready,
    look_at_deployment,
    purchase_kept_invariants,
    service_url,
    services_reachable,
    shop_get,
    wait_until_reachable,
    wait_until_ready,
)
from labkit.admin import admin_headers, ensure_admin_secret
from labkit.traces import start_trace

LAB_ID = "02-microservices"
SERVICES = ("storefront", "stock", "balance")
STOREFRONT = service_url("storefront")
#: Who the storefront must call for a purchase: the services that keep the books and the money.
DEPENDENCIES = ("stock", "balance")
#: The ranking a host starts with when BOOKSTORE_RANKING is unset, always as version 1.0.0.
DEFAULT_RANKING = "by-sales"
STARTUP_VERSION = "1.0.0"
#: The module the solution switches to.
NEW_RANKING = {"name": "by-price", "version": "1.0.0", "bundled": "by-price", "activate": True}


@check("02.1", title="storefront, stock and balance each run in their own Deployment", timeout=120)
def services_deployed(ctx: Context) -> CheckResult:
    return deployments_ready(ctx, SERVICES)


@services_deployed.solution
def deploy_services(ctx: Context) -> None:
    ensure_admin_secret(ctx)
    apply_kinds(ctx, LAB_ID, ["PersistentVolumeClaim", "Deployment"])
    wait_until_ready(ctx, SERVICES)


@check("02.2", title="Each service has a Service with Endpoints and answers through it", timeout=60)
def services_exposed(ctx: Context) -> CheckResult:
    return services_reachable(ctx, SERVICES)


@services_exposed.solution
def expose_services(ctx: Context) -> None:
    apply_kinds(ctx, LAB_ID, ["Service"])
    wait_until_reachable(ctx, SERVICES)


@check("02.3", title="A purchase through the storefront moved stock and money exactly", timeout=30)
def storefront_purchase(ctx: Context) -> CheckResult:
    return purchase_kept_invariants(ctx, STOREFRONT)


@storefront_purchase.solution
def buy_from_storefront(ctx: Context) -> None:
    create_buyer(ctx, STOREFRONT)
    buy(ctx, STOREFRONT, PURCHASE).raise_for_status()


@check("02.4", title="Bad purchases were refused and changed nothing", timeout=30)
def storefront_refusals(ctx: Context) -> CheckResult:
    return bad_purchases_changed_nothing(ctx, STOREFRONT, "02.4")


@storefront_refusals.solution
def try_bad_purchases(ctx: Context) -> None:
    for purchase in BAD_PURCHASES:
        buy(ctx, STOREFRONT, purchase)


# --- 02.5: the trace of one purchase -------------------------------------------------------------


@dataclass(frozen=True)
class TracedPurchase:
    """The newest purchase the notebook traced, and who was called below it."""

    trace_id: str
    called: tuple[str, ...]
    drawing: str


def newest_traced_purchase(ctx: Context) -> TracedPurchase | None:
    """The newest successful purchase that joined a caller's trace (a `traceparent` was sent), if any."""
    answer = shop_get(ctx, STOREFRONT, "/debug/spans")
    answer.raise_for_status()
    traced = [
        span
        for span in answer.json()["spans"]
        if span["operation"] == PURCHASE_OPERATION and span["status"] == 201 and span["parent_id"]
    ]
    if not traced:
        return None
    purchase = max(traced, key=lambda span: span["start"])
    tree = collect_trace(purchase["trace_id"], [service_url(name) for name in SERVICES], client=ctx.http)
    node = next(
        (node for root in tree.roots for node in _nodes(root) if node.span.span_id == purchase["span_id"]), None
    )
    called = tuple(sorted({span.service for _, span in node.walk()} - {"storefront"})) if node else ()
    return TracedPurchase(purchase["trace_id"], called, tree.render())


def _nodes(root: SpanNode) -> list[SpanNode]:
    return [root, *(node for child in root.children for node in _nodes(child))]


@check("02.5", title="The storefront really calls stock and balance (the trace shows it)", timeout=30)
def purchase_traced(ctx: Context) -> CheckResult:
    try:
        seen = newest_traced_purchase(ctx)
    except ShopUnreachable as unreachable:
        return unreachable.result(ctx)
    if seen is None:
        traced = json.dumps({**PURCHASE, "book": "00004", "count": 1})
        return CheckResult.failed(
            "The storefront has served no purchase that carried a trace of yours.",
            "A purchase joins your trace when it carries your `traceparent` header: start a trace with "
            "`trace = start_trace()` and send `headers=trace.headers` with the purchase.",
            f'In the notebook: `ctx.http.post("{STOREFRONT}/api/purchase", json={traced}, '
            "headers=labkit.traces.start_trace().headers)`.",
        )
    missing = [name for name in DEPENDENCIES if name not in seen.called]
    if missing:
        return CheckResult.failed(
            f"The traced purchase {seen.trace_id} shows no call to {' or '.join(missing)}.",
            "The storefront finds stock and balance by their Service names (http://stock, http://balance): look "
            "at its BOOKSTORE_STOCK_URL and BOOKSTORE_BALANCE_URL (`kubectl set env deployment/storefront --list`).",
            reapply_fix("storefront"),
            trace_id=seen.trace_id,
            call_tree=seen.drawing,
        )
    return CheckResult.passed(
        f"Purchase trace {seen.trace_id}: the storefront called {' and '.join(seen.called)}.",
        trace_id=seen.trace_id,
        call_tree=seen.drawing,
    )


@purchase_traced.solution
def trace_a_purchase(ctx: Context) -> None:
    buy(ctx, STOREFRONT, PURCHASE, headers=start_trace().headers).raise_for_status()


# --- 02.6: a dynamic module, switched without a restart ------------------------------------------


@dataclass(frozen=True)
class RankingState:
    """The storefront's active ranking, the order it serves, and the one pod serving it."""

    active: str | None
    error: str | None
    installed_at: float | None
    #: Modules installed besides the active one (name@version).
    inactive: tuple[str, ...]
    order: tuple[str, ...]
    startup_order: tuple[str, ...]
    startup_module: str
    pods: tuple[PodState, ...]

    def evidence(self) -> dict[str, object]:
        return {
            "active module": self.active,
            "installed, not active": list(self.inactive),
            "started with": self.startup_module,
            "order served": list(self.order),
            f"order by {self.startup_module}": list(self.startup_order),
            "module installed at": _timestamp(self.installed_at),
            "pods": [{**pod.evidence(), "started_at": pod.started_at} for pod in self.pods],
        }


def _timestamp(seconds: float | None) -> str | None:
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds") if seconds else None


def look_at_ranking(ctx: Context) -> RankingState:
    workload = look_at_deployment(ctx, "storefront")
    startup_module = workload.environment.get("BOOKSTORE_RANKING") or DEFAULT_RANKING
    books = shop_get(ctx, STOREFRONT, "/api/books")
    books.raise_for_status()
    shelf = books.json()
    modules = shop_get(ctx, STOREFRONT, "/admin/modules", headers=admin_headers(ctx))
    modules.raise_for_status()
    active = modules.json()["active"]
    installed_at = next((m["installed_at"] for m in modules.json()["modules"] if m["active"]), None)
    inactive = tuple(m["reference"] for m in modules.json()["modules"] if not m["active"])
    served = [Book.model_validate(book) for book in shelf["books"]]
    return RankingState(
        active=active,
        error=(shelf.get("ranking") or {}).get("error"),
        installed_at=installed_at,
        inactive=inactive,
        order=tuple(book.id for book in served),
        startup_order=tuple(book.id for book in _startup_ranking(startup_module).rank(served)),
        startup_module=f"{startup_module}@{STARTUP_VERSION}",
        pods=tuple(workload.ready_pods),
    )


def _startup_ranking(name: str) -> LoadedModule:
    """The module the storefront started with, loaded here to see the order it would serve."""
    if name not in BUNDLED_MODULES:
        raise ValueError(f"BOOKSTORE_RANKING={name!r} is not a bundled module ({', '.join(BUNDLED_MODULES)})")
    return load_module(name, STARTUP_VERSION, bundled_source(name), "bundled")


def _started_before(pod: PodState, installed_at: float) -> bool:
    return pod.started_at is not None and datetime.fromisoformat(pod.started_at).timestamp() <= installed_at + 1


@check("02.6", title="The ranking module switched while the storefront pod kept running", timeout=30)
def ranking_switched(ctx: Context) -> CheckResult:
    try:
        seen = look_at_ranking(ctx)
    except ShopUnreachable as unreachable:
        return unreachable.result(ctx)
    evidence = seen.evidence()
    if len(seen.pods) != 1:
        return CheckResult.failed(
            f"The storefront has {len(seen.pods)} Ready pods; this step needs exactly one.",
            "A module is installed into one running process: each pod has its own, so keep one pod for this step.",
            "Scale the storefront to one pod: `kubectl scale deployment storefront --replicas=1`.",
            **evidence,
        )
    if seen.active in (None, seen.startup_module):
        waiting = [reference for reference in seen.inactive if reference != seen.startup_module]
        if waiting:
            name, version = waiting[-1].split("@")
            return CheckResult.failed(
                f"{waiting[-1]} is installed but not active: the storefront still ranks with {seen.active}.",
                "Installing and activating are two steps: POST /admin/modules installs a module (and activates it "
                'only with "activate": true); installing it again answers 409 module_exists. '
                "POST /admin/modules/{name}/{version}/activate activates one that is installed.",
                f'Activate it: `ctx.http.post("{STOREFRONT}/admin/modules/{name}/{version}/activate", '
                "headers=labkit.admin_headers())`.",
                **evidence,
            )
        return CheckResult.failed(
            f"The storefront still ranks with {seen.active}, the module it started with.",
            f"GET {STOREFRONT}/admin/modules lists the active module and the bundled ones you can install.",
            f'Install by-price and activate it in one call: `ctx.http.post("{STOREFRONT}/admin/modules", '
            f"json={NEW_RANKING!r}, headers=labkit.admin_headers())`.",
            **evidence,
        )
    if seen.error:
        return CheckResult.failed(
            f"The active module {seen.active} fails on the live shelf: {seen.error}",
            "Activate a module that returns every book once, or fix this one and install it as a new version.",
            f'Activate the bundled by-price: `ctx.http.post("{STOREFRONT}/admin/modules", '
            f"json={ {**NEW_RANKING, 'version': '1.0.1'}!r}, headers=labkit.admin_headers())`.",
            **evidence,
        )
    if seen.order == seen.startup_order:
        return CheckResult.failed(
            f"{seen.active} is active, but it ranks the books just as {seen.startup_module} does.",
            "Pick a module that orders differently (by-price puts the cheapest first), so the switch shows.",
            f'Install by-price as a new version and activate it: `ctx.http.post("{STOREFRONT}/admin/modules", '
            f"json={ {**NEW_RANKING, 'version': '1.0.1'}!r}, headers=labkit.admin_headers())`.",
            **evidence,
        )
    (pod,) = seen.pods
    if seen.installed_at is None or not _started_before(pod, seen.installed_at):
        return CheckResult.failed(
            f"{seen.active} is active, but the pod serving it started after the module was installed.",
            "Switch the module in the running pod through the admin API; do not restart or re-deploy it.",
            **evidence,
        )
    # The module was installed into this very process: the pod started before the install and still runs.
    return CheckResult.passed(
        f"The storefront ranks with {seen.active} (order {', '.join(seen.order)}) in pod {pod.name} "
        f"(uid {pod.uid}, restarts {pod.restarts}), running since before the switch.",
        **evidence,
    )


@ranking_switched.solution
def switch_ranking(ctx: Context) -> None:
    admin = admin_headers(ctx)
    installed = ctx.http.post(f"{STOREFRONT}/admin/modules", json=NEW_RANKING, headers=admin)
    if installed.status_code == 409:
        activate = f"{STOREFRONT}/admin/modules/{NEW_RANKING['name']}/{NEW_RANKING['version']}/activate"
        installed = ctx.http.post(activate, headers=admin)
    installed.raise_for_status()


# --- 02.7: the fix-it challenge ------------------------------------------------------------------

#: Where the challenge sends balance's traffic: a port the balance pods do not listen on.
UNUSED_PORT = 8081


@challenge(
    "02.7",
    title="Challenge: purchases fail since the platform team's change",
    story=(
        "The platform team made a change to the cluster this morning. Since then customers cannot buy: "
        f"the storefront answers every purchase with an error about balance, and nobody touched the storefront. "
        f"Make purchases work again for {BUYER}, without losing anybody's books or money."
    ),
    timeout=60,
)
def purchases_work_again(ctx: Context) -> CheckResult:
    answer = ctx.http.get(f"{STOREFRONT}/api/users/{BUYER}")
    found = answer_of(answer.status_code, answer.text)
    if answer.status_code in (502, 503, 504):
        symptom = (
            f"The storefront still cannot reach balance: GET {STOREFRONT}/api/users/{BUYER} answered {found.status}."
        )
        balance = await_service(ctx, "balance", path=HEALTH_PATH)
        if not balance.ready:
            return balance.failed(symptom=symptom)
        storefront = await_service(ctx, "storefront", path=HEALTH_PATH)
        if not storefront.ready:
            return storefront.failed(symptom=symptom)
        return CheckResult.failed(
            f"{symptom} ({found.text})",
            "Where to look: the storefront's BOOKSTORE_BALANCE_URL (`kubectl set env deployment/storefront --list`).",
            reapply_fix("storefront"),
        )
    if answer.status_code == 404:
        return CheckResult.failed(
            f"The storefront reaches balance again, but {BUYER}'s account is gone: balance lost its data.",
            "balance keeps its accounts on its claim `balance-data`: a new claim starts empty.",
            "Start lab 02 again with its data: `lab reset 02`, then run the notebook from the top.",
            answer=f"{found.status} {found.text}",
        )
    if answer.status_code != 200:
        return CheckResult.failed(
            f"GET {STOREFRONT}/api/users/{BUYER} answered {found.status}: {found.text}",
            "Where to look: `kubectl logs deployment/storefront` and `kubectl logs deployment/balance`.",
        )
    return CheckResult.passed(
        f"The storefront reaches balance again: {BUYER} has {answer.json()['balance']} fen and their books.",
        account=answer.json(),
    )


@purchases_work_again.breaks
def send_balance_traffic_to_another_port(ctx: Context) -> None:
    """The platform team's change: balance's Service now targets a port its pods do not listen on."""
    patch = {"spec": {"ports": [{"port": 80, "targetPort": UNUSED_PORT}]}}
    ctx.core.patch_namespaced_service("balance", ctx.namespace, patch)


@purchases_work_again.solution
def point_balance_at_its_pods(ctx: Context) -> None:
    patch = {"spec": {"ports": [{"port": 80, "targetPort": "http"}]}}
    ctx.core.patch_namespaced_service("balance", ctx.namespace, patch)
    wait_until_reachable(ctx, ["balance"])


def reset(ctx: Context) -> None:
    """Remove the three services' Deployments, Services and volume claims, and forget the challenge."""
    delete_lab_objects(ctx, LAB_ID)
    challenges.forget(ctx, "02")
    history.forget(ctx, "02")
