"""Lab 03, transactions: see a purchase go wrong across services, then make it right with tc and TCC.

The attendee deploys lab 02's services in lab mode (infra/overlays/03-transactions), breaks a purchase
on purpose (money taken, no book), deploys ``tc`` with its log on a volume, switches the storefront's
purchases to global transactions, drills every fault point, deletes participant pods under load and
watches recovery. The checks read the shop through its APIs (books, each user's money and books,
orders and payments, reservations and frozen money) and the coordinator's log.

:func:`audit_shop` is the one judge of consistency, shared with the chaos test and the benchmark.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from kubernetes.client import V1EnvVar
from kubernetes.client.exceptions import ApiException

from bookstore.catalog import CATALOG, INITIAL_BALANCE, INITIAL_STOCK
from bookstore.txn.faults import FAULT_HEADER, FaultPoint
from checkers._context import Context
from checkers._registry import check
from checkers._result import CheckResult
from checkers._runner import observe, time_left
from checkers.diagnosis import await_service, await_workload, diagnose_service, overlay_fix, overlay_fixes
from checkers.lab01_monolith import (
    HEALTH_PATH,
    PURCHASE,
    ShopUnreachable,
    delete_lab_objects,
    deployments_ready,
    look_at_deployment,
    service_url,
    services_reachable,
    template_problem,
    wait_until_reachable,
    wait_until_ready,
)
from labkit._apply import apply
from labkit._waiting import wait_for
from labkit.admin import ensure_admin_secret
from labkit.kustomize import base_manifest, overlay, overlay_path

__all__ = [
    "BUYERS",
    "EVERYONE",
    "FAULT_DRILL",
    "LAB_ID",
    "PurchaseLoad",
    "ShopAudit",
    "audit_shop",
    "delete_a_participant_under_load",
    "delete_pods",
    "look_at_coordinator",
    "reset",
    "set_storefront_coordinator",
    "start_challenge",
]

LAB_ID = "03-transactions"
SERVICES = ("storefront", "stock", "balance")
PARTICIPANTS = ("stock", "balance")
TC = "tc"
STOREFRONT = service_url("storefront")
TC_URL = service_url(TC)
TC_VARIABLE = "BOOKSTORE_TC_URL"
TIMEOUT_VARIABLE = "BOOKSTORE_TXN_TIMEOUT"
LAB_MODE_VARIABLE = "BOOKSTORE_LAB_MODE"
#: The global timeout purchases use (the storefront's default): nothing may stay held longer.
GLOBAL_TIMEOUT = 60.0
#: tc's statuses of a transaction that is over: a hold it left behind will never be confirmed or cancelled.
FINISHED = ("committed", "rollbacked", "timeout_rollbacked")
#: What TCC tries hold, where each participant lists them, and the participant's cancel of that hold
#: (bookstore.services.stock.RESERVE_STOCK and bookstore.services.balance.FREEZE_MONEY).
HOLDS = (
    ("copies reserved", "reservations", "http://stock/txn/reserve-stock/cancel"),
    ("money frozen", "frozen", "http://balance/txn/freeze-money/cancel"),
)

#: Who buys in this lab once purchases are global transactions (ada is the buyer of labs 01-02).
BUYERS = ("ada", "bob", "carol", "dave")
#: The customer of step 2, who pays for books she never gets while the storefront has no coordinator.
VICTIM = "eve"
#: The customers the fix-it challenge hurts.
CHALLENGE_VICTIMS = ("grace", "heidi")
EVERYONE = (*BUYERS, VICTIM, *CHALLENGE_VICTIMS)

#: Step 2's fault: the money is taken, then the storefront fails before it places the order.
BREAK_A_PURCHASE = f"{FaultPoint.STOREFRONT_AFTER_PAYMENT}=fail"
#: Step 5's drill: one purchase per line, so every point of a global transaction is struck once.
FAULT_DRILL = (
    f"{FaultPoint.STOCK_TRY}=fail",
    f"{FaultPoint.BALANCE_TRY}=fail-after",
    f"{FaultPoint.STOREFRONT_AFTER_TRY}=fail",
    f"{FaultPoint.TC_BEFORE_PHASE_TWO}=fail",
    f"{FaultPoint.STOCK_CONFIRM}=fail-after",
    f"{FaultPoint.BALANCE_CONFIRM}=fail",
    f"{FaultPoint.STOCK_TRY}=fail, {FaultPoint.BALANCE_CANCEL}=fail-after",
    f"{FaultPoint.BALANCE_TRY}=fail, {FaultPoint.STOCK_CANCEL}=fail",
)
DRILLED_POINTS = frozenset(point for point in FaultPoint if point is not FaultPoint.STOREFRONT_AFTER_PAYMENT)
PRICES = {book.id: book.price for book in CATALOG}


# --- The one judge of consistency ------------------------------------------------------------------


@dataclass(frozen=True)
class UserLedger:
    """One user as the shop keeps them: money, what was bought, orders at stock, payments at balance."""

    name: str
    balance: int
    frozen: int
    books: dict[str, int]
    orders: tuple[dict[str, Any], ...]
    payments: tuple[dict[str, Any], ...]

    @property
    def spent(self) -> int:
        return INITIAL_BALANCE - self.balance - self.frozen

    @property
    def owed(self) -> int:
        return sum(PRICES[book] * count for book, count in self.books.items())

    def breaks(self) -> list[str]:
        broken = []
        if self.spent != self.owed:
            broken.append(f"{self.name} paid {self.spent} fen, but the books {self.name} owns cost {self.owed} fen")
        paid = {p["id"]: p for p in self.payments if p["refunded_at"] is None}
        ordered = {o["id"]: o for o in self.orders}
        for order_id in sorted(ordered.keys() - paid.keys()):
            broken.append(f"order {order_id} of {self.name} has no payment")
        for order_id in sorted(paid.keys() - ordered.keys()):
            broken.append(f"{self.name} paid {paid[order_id]['amount']} fen (payment {order_id}) for no order")
        for order_id in sorted(ordered.keys() & paid.keys()):
            if ordered[order_id]["amount"] != paid[order_id]["amount"]:
                broken.append(
                    f"order {order_id} of {self.name} costs {ordered[order_id]['amount']} fen, paid differently"
                )
        return broken


@dataclass(frozen=True)
class ShopAudit:
    """The shop at one moment: books, the named users, and what TCC tries still hold."""

    books: dict[str, dict[str, Any]]
    users: dict[str, UserLedger]
    reservations: tuple[dict[str, Any], ...]
    frozen: tuple[dict[str, Any], ...]
    taken_at: float = field(default_factory=time.time)

    def breaks(self, users: Iterable[str] | None = None) -> list[str]:
        """Every broken invariant, in words: per book, per user (all known ones, or ``users``)."""
        broken = [
            f"book {book_id}: {INITIAL_STOCK} − stock {book['stock']} = {INITIAL_STOCK - book['stock']}, "
            f"but {book['sold']} sold and {book.get('reserved', 0)} reserved"
            for book_id, book in sorted(self.books.items())
            if INITIAL_STOCK - book["stock"] != book["sold"] + book.get("reserved", 0)
        ]
        chosen = self.users if users is None else {n: self.users[n] for n in users if n in self.users}
        for ledger in chosen.values():
            broken += ledger.breaks()
        return broken

    def holds(self) -> list[tuple[str, dict[str, Any], str]]:
        """Every hold of a TCC try: (what is held, its row, the participant's cancel URL for it)."""
        rows = {"reservations": self.reservations, "frozen": self.frozen}
        return [(kind, row, cancel) for kind, listed, cancel in HOLDS for row in rows[listed]]

    def hanging(self, older_than: float) -> list[str]:
        """Reservations and frozen money held longer than ``older_than`` seconds."""
        held = []
        for kind, row, _ in self.holds():
            age = self.taken_at - datetime.fromisoformat(row["created_at"]).timestamp()
            if age > older_than:
                held.append(f"{_held(kind, row)} {age:.0f}s ago")
        return held

    @property
    def books_sold(self) -> int:
        return sum(book["sold"] for book in self.books.values())

    @property
    def value_sold(self) -> int:
        return sum(book["price"] * book["sold"] for book in self.books.values())

    @property
    def money_taken(self) -> int:
        return sum(ledger.spent for ledger in self.users.values())

    def evidence(self) -> dict[str, object]:
        shelf = {b: f"{x['stock']}/{x['sold']}/{x.get('reserved', 0)}" for b, x in sorted(self.books.items())}
        return {
            "books (id: stock/sold/reserved)": shelf,
            "users (name: paid/owed/frozen fen)": {
                name: f"{u.spent}/{u.owed}/{u.frozen}" for name, u in sorted(self.users.items())
            },
            "reservations held": len(self.reservations),
            "frozen amounts held": len(self.frozen),
        }


def _get(http: httpx.Client, url: str) -> Any:
    answer = http.get(url)
    if answer.status_code in (502, 503, 504):
        raise ShopUnreachable(url, answer)
    answer.raise_for_status()
    return answer.json()


def audit_shop(http: httpx.Client, users: Iterable[str] = EVERYONE) -> ShopAudit:
    """Read the shop through its Services: books at stock, and each existing user's account, orders, payments."""
    books = {book["id"]: book for book in _get(http, "http://stock/api/books")["books"]}
    ledgers = {}
    for name in users:
        account = http.get(f"http://balance/api/users/{name}")
        if account.status_code == 404:
            continue
        if account.status_code != 200:
            raise ShopUnreachable(f"http://balance/api/users/{name}", account)
        owned = _get(http, f"http://stock/api/users/{name}/books")["books"]
        ledgers[name] = UserLedger(
            name=name,
            balance=account.json()["balance"],
            frozen=account.json()["frozen"],
            books={book["id"]: book["count"] for book in owned},
            orders=tuple(_get(http, f"http://stock/api/users/{name}/orders")["orders"]),
            payments=tuple(_get(http, f"http://balance/api/users/{name}/payments")["payments"]),
        )
    return ShopAudit(
        books=books,
        users=ledgers,
        reservations=tuple(_get(http, "http://stock/api/reservations")["reservations"]),
        frozen=tuple(_get(http, "http://balance/api/frozen")["frozen"]),
    )


# --- The coordinator's log -------------------------------------------------------------------------


@dataclass(frozen=True)
class CoordinatorState:
    """What tc's API shows: the count of transactions per status and the newest purchases."""

    counts: dict[str, int]
    purchases: tuple[dict[str, Any], ...]

    @property
    def unfinished(self) -> int:
        return sum(n for status, n in self.counts.items() if status not in FINISHED)

    def committed(self) -> list[dict[str, Any]]:
        return [t for t in self.purchases if t["status"] == "committed"]

    def struck_points(self) -> set[str]:
        """The fault points the purchases began with."""
        return {
            entry.split("=")[0].strip() for t in self.purchases for entry in t["faults"].split(",") if entry.strip()
        }

    def evidence(self) -> dict[str, object]:
        return {"tc transactions by status": self.counts, "purchases seen": len(self.purchases)}


def look_at_coordinator(http: httpx.Client, limit: int = 1000) -> CoordinatorState:
    seen = _get(http, f"{TC_URL}/api/transactions?name=purchase&limit={limit}")
    return CoordinatorState(counts=seen["counts"], purchases=tuple(seen["transactions"]))


def storefront_coordinator(ctx: Context) -> str | None:
    """The coordinator the storefront's pod template names (BOOKSTORE_TC_URL), if any."""
    return look_at_deployment(ctx, "storefront").environment.get(TC_VARIABLE) or None


# --- Load: concurrent purchases, as the notebook and the chaos test make them -------------------------


@dataclass
class PurchaseLoad:
    """Purchases by ``users`` from ``concurrency`` threads, each with its own Idempotency-Key, retried once.

    ``faults`` are x-bookstore-fault values used in turn (None: no fault). Answers are counted by
    status; a purchase whose answer got lost (a 5xx, a broken connection) is asked again with the
    same key, as a careful client does, and again with back-off for ``retry_for`` seconds while the
    shop does not answer. Without ``idempotency_keys`` (a storefront with no coordinator refuses them)
    nothing is asked twice: a retry could buy twice.
    """

    http: httpx.Client
    users: Sequence[str]
    purchases: int
    concurrency: int = 4
    faults: Sequence[str | None] = (None,)
    idempotency_keys: bool = True
    retry_for: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    #: The orders the shop acknowledged (201): (user, order), what the clients believe they bought.
    acknowledged: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _runner: threading.Thread = field(default_factory=threading.Thread)

    def run(self) -> dict[str, int]:
        """Make every purchase; the count of answers by status ("201", "409", ..., "lost")."""
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="purchase") as pool:
            list(pool.map(self._purchase, range(self.purchases)))
        return dict(self.statuses)

    def start(self) -> threading.Thread:
        """Run in the background (join the thread, or call :meth:`wait`)."""
        self._runner = threading.Thread(target=self.run, name="purchase-load", daemon=True)
        self._runner.start()
        return self._runner

    def wait_a_moment(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the load to end; True while it still runs."""
        self._runner.join(seconds)
        return self._runner.is_alive()

    def wait(self, timeout: float = 300) -> dict[str, int]:
        self._runner.join(timeout)
        if self._runner.is_alive():
            raise TimeoutError(f"the purchase load did not finish within {timeout:g}s ({self.done} done)")
        return dict(self.statuses)

    @property
    def done(self) -> int:
        return sum(self.statuses.values())

    def _purchase(self, index: int) -> None:
        user = self.users[index % len(self.users)]
        fault = self.faults[index % len(self.faults)]
        book = CATALOG[index % len(CATALOG)].id
        headers = {"Idempotency-Key": f"load-{time.time_ns()}-{index}"} if self.idempotency_keys else {}
        outcome, order = self._ask(user, book, {**headers, FAULT_HEADER: fault} if fault else headers)
        give_up, pause = time.monotonic() + self.retry_for, 0.1
        while headers and (outcome.startswith("5") or outcome == "lost"):
            outcome, order = self._ask(user, book, headers)
            if time.monotonic() + pause > give_up:
                break
            time.sleep(pause)  # the shop is not answering: give it a moment, as a polite client does
            pause = min(pause * 2, 1.0)
        with self._lock:
            self.statuses[outcome] = self.statuses.get(outcome, 0) + 1
            if order is not None:
                self.acknowledged.append((user, order))

    def _ask(self, user: str, book: str, headers: dict[str, str]) -> tuple[str, dict[str, Any] | None]:
        try:
            answer = self.http.post(
                f"{STOREFRONT}/api/purchase", json={"user": user, "book": book, "count": 1}, headers=headers
            )
        except httpx.HTTPError:
            return "lost", None
        return str(answer.status_code), answer.json() if answer.status_code == 201 else None


# --- The lab's workloads, repaired from the lab's overlay -------------------------------------------


def workloads_not_ready(ctx: Context, names: Sequence[str]) -> CheckResult | None:
    """FAILED with the cause unless each named Deployment has a Ready pod, waiting only while one is on its way.

    The checks that read the shop and tc ask this first: they wait for a participant that is starting,
    never for one that is gone or crash-looping, and its fix puts back the lab's own objects.
    """
    workloads = await_workload(ctx, *names)
    if workloads.ready:
        return None
    name = next((n for n in names if workloads.subject == f"Deployment {n}"), names[0])
    return workloads.failed(fixes=overlay_fixes(LAB_ID, name))


def lab_deployments_ready(ctx: Context, names: Sequence[str], *, persistent: bool = False) -> CheckResult:
    """`deployments_ready` with this lab's fixes: what is broken is put back from the lab's overlay.

    A pod template unlike the lab's is told at once, before any wait for its pods.
    """
    for name in names:
        seen = look_at_deployment(ctx, name)
        problem = template_problem(seen, persistent=persistent) if seen.exists else None
        if problem is not None:
            return _fixed_from_overlay(problem, [name])
    not_ready = workloads_not_ready(ctx, names)
    if not_ready is not None:
        return not_ready
    return _fixed_from_overlay(deployments_ready(ctx, names, persistent=persistent), names)


def _fixed_from_overlay(result: CheckResult, names: Sequence[str]) -> CheckResult:
    """A fix that applies infra/base's Deployment of one of `names` applies the lab's instead (lab mode stays on)."""
    for name in names:
        found = base_manifest("Deployment", name)
        if found is not None and result.hints and str(found[0]) in result.hints[-1]:
            return dataclasses.replace(result, hints=(*result.hints[:-1], overlay_fix(LAB_ID, name)))
    return result


# --- 03.1: the services, in lab mode, with their data on volumes -------------------------------------


@check("03.1", title="storefront, stock and balance run in lab mode, stock and balance on volumes", timeout=120)
def services_in_lab_mode(ctx: Context) -> CheckResult:
    participants = lab_deployments_ready(ctx, PARTICIPANTS, persistent=True)
    if not participants.ok:
        return participants
    storefront = lab_deployments_ready(ctx, ["storefront"])
    if not storefront.ok:
        return storefront
    for name in SERVICES:
        seen = look_at_deployment(ctx, name)
        if seen.environment.get(LAB_MODE_VARIABLE) != "true":
            return CheckResult.failed(
                f"{name!r} does not run in lab mode ({LAB_MODE_VARIABLE} is "
                f"{seen.environment.get(LAB_MODE_VARIABLE)!r}), so it refuses the faults this lab injects.",
                f"`kubectl describe deployment {name}` (Environment); the Deployments of "
                f"infra/overlays/{LAB_ID} set {LAB_MODE_VARIABLE}=true.",
                f"Turn lab mode on: `kubectl set env deployment/{name} {LAB_MODE_VARIABLE}=true`.",
                **seen.evidence(),
            )
    reachable = services_reachable(ctx, SERVICES)
    if not reachable.ok:
        return reachable
    return CheckResult.passed(
        "storefront, stock and balance are Ready in lab mode; stock and balance keep their data on claims.",
        **dict(participants.evidence),
    )


@services_in_lab_mode.solution
def deploy_lab_services(ctx: Context) -> None:
    ensure_admin_secret(ctx)
    apply(_lab_objects(without_coordinator=True), connection=ctx)
    wait_until_ready(ctx, SERVICES)
    wait_until_reachable(ctx, SERVICES)


def _lab_objects(*, without_coordinator: bool = False, coordinator_only: bool = False) -> list[dict[str, Any]]:
    objects = overlay(LAB_ID)
    is_tc = [obj["metadata"]["labels"].get("app") == TC for obj in objects]
    if without_coordinator:
        return [obj for obj, tc in zip(objects, is_tc, strict=True) if not tc]
    if coordinator_only:
        return [obj for obj, tc in zip(objects, is_tc, strict=True) if tc]
    return objects


# --- 03.2: without a coordinator, a fault takes money for nothing -----------------------------------


@check("03.2", title="Without a coordinator, a failed purchase took money for no book", timeout=30)
def purchase_went_wrong(ctx: Context) -> CheckResult:
    try:
        audit = audit_shop(ctx.http, [VICTIM])
    except ShopUnreachable as unreachable:
        return unreachable.result(ctx)
    victim = audit.users.get(VICTIM)
    if victim is None:
        return CheckResult.failed(
            f"There is no user {VICTIM!r} yet: nobody has bought with the fault.",
            f"Step 2 buys as {VICTIM}, who needs an account first.",
            f"Open her account: `ctx.http.post('{STOREFRONT}/api/users', json={{'name': '{VICTIM}'}})`, then buy "
            "with the fault.",
        )
    ordered = {order["id"] for order in victim.orders}
    for_nothing = [payment for payment in victim.payments if payment["id"] not in ordered]
    if not for_nothing:
        return CheckResult.failed(
            f"{VICTIM} has paid exactly for the books she owns: no purchase has gone wrong yet (a purchase without "
            f"the fault header {FAULT_HEADER} goes through).",
            f"The fault {BREAK_A_PURCHASE} makes the storefront fail after the payment, before the order: "
            f"buy as {VICTIM} with the header {FAULT_HEADER} while the storefront has no coordinator.",
            f"Buy with the fault: `ctx.http.post('{STOREFRONT}/api/purchase', json={{'user': '{VICTIM}', "
            f"'book': '{PURCHASE['book']}', 'count': 1}}, headers={{'{FAULT_HEADER}': '{BREAK_A_PURCHASE}'}})`.",
            **audit.evidence(),
        )
    taken = sum(payment["amount"] for payment in for_nothing)
    refunded = " (refunded since)" if all(payment["refunded_at"] for payment in for_nothing) else ""
    return CheckResult.passed(
        f"{VICTIM} paid {taken} fen in {len(for_nothing)} payment(s) that bought no book{refunded}. Each service did "
        "its part; nothing made the two parts one.",
        payments_without_an_order=[payment["id"] for payment in for_nothing],
        **audit.evidence(),
    )


@purchase_went_wrong.solution
def break_a_purchase(ctx: Context) -> None:
    created = ctx.http.post(f"{STOREFRONT}/api/users", json={"name": VICTIM})
    if created.status_code != 409:
        created.raise_for_status()
    for _ in range(3):
        ctx.http.post(
            f"{STOREFRONT}/api/purchase",
            json={**PURCHASE, "user": VICTIM},
            headers={FAULT_HEADER: BREAK_A_PURCHASE},
        )


# --- 03.3: tc with its log on a volume -------------------------------------------------------------------


@check("03.3", title="tc runs with its transaction log on a PersistentVolumeClaim, behind a Service", timeout=120)
def coordinator_deployed(ctx: Context) -> CheckResult:
    deployed = lab_deployments_ready(ctx, [TC], persistent=True)
    if not deployed.ok:
        return deployed
    return services_reachable(ctx, [TC])


@coordinator_deployed.solution
def deploy_coordinator(ctx: Context) -> None:
    apply(_lab_objects(coordinator_only=True), connection=ctx)
    wait_until_ready(ctx, [TC])
    wait_until_reachable(ctx, [TC])


# --- 03.4: purchases are global transactions ---------------------------------------------------------


@check("03.4", title="Purchases are global transactions: tc committed them, with a branch at stock and at balance")
def purchases_are_global_transactions(ctx: Context) -> CheckResult:
    coordinator = storefront_coordinator(ctx)
    if coordinator is None:
        return CheckResult.failed(
            f"The storefront's pod template has no {TC_VARIABLE}: it still buys without a coordinator.",
            "`kubectl describe deployment storefront` (Environment): the storefront begins a global transaction "
            f"at the coordinator {TC_VARIABLE} names.",
            f"Set it: `kubectl set env deployment/storefront {TC_VARIABLE}={TC_URL}`, then wait for the new pod.",
        )
    problem = workloads_not_ready(ctx, (*SERVICES, TC)) or coordinator_unreachable(ctx, coordinator)
    if problem is not None:
        return problem
    rollout = observe(lambda: _rolled_out(ctx, "storefront"), bool, what="the storefront's new pod to be Ready")
    if not rollout.reached:
        return CheckResult.failed(
            f"The storefront's pod with {TC_VARIABLE}={coordinator} is still not Ready: the one serving buys "
            "as before.",
            "`kubectl rollout status deployment/storefront` says how far it is.",
            "Wait for it: `kubectl rollout status deployment/storefront`.",
        )
    settled = _settled(ctx)
    if isinstance(settled, CheckResult):
        return settled
    seen, audit = settled
    committed = {t["outcome"]["order"]["id"]: t for t in seen.committed() if (t["outcome"] or {}).get("order")}
    ordered = [order for name, ledger in audit.users.items() if name in BUYERS for order in ledger.orders]
    newest = max(ordered, key=lambda order: order["created_at"], default=None)
    if newest is None or newest["id"] not in committed:
        said = "The newest purchase of the lab's buyers is not one tc committed" if committed else "No purchase yet"
        return CheckResult.failed(
            f"{said} (the storefront names {coordinator}): buy once more as {BUYERS[0]} now that purchases go "
            "through tc.",
            f"The storefront's pod started with {TC_VARIABLE} buys through tc: wait for it, then open "
            f"{BUYERS[0]}'s account (a 409 says it is open) and buy.",
            "Wait for the new pod, open the account and buy: `kubectl rollout status deployment/storefront`, "
            f"`ctx.http.post('{STOREFRONT}/api/users', json={{'name': '{BUYERS[0]}'}})`, "
            f"`ctx.http.post('{STOREFRONT}/api/purchase', json={{'user': '{BUYERS[0]}', 'book': '{PURCHASE['book']}', "
            "'count': 1})`",
            newest_order=newest,
            **seen.evidence(),
        )
    txn = committed[newest["id"]]
    branches = sorted((b["resource"], b["status"]) for b in txn["branches"])
    if branches != [("balance", "committed"), ("stock", "committed")]:
        return CheckResult.failed(
            f"Transaction {txn['xid']} does not have one committed branch at stock and one at balance: {branches}.",
            "Use the storefront of this lab's overlay: its purchase registers both branches.",
            **seen.evidence(),
        )
    return CheckResult.passed(
        f"Order {newest['id']} is global transaction {txn['xid']}: tc committed it, confirming "
        f"the reservation at stock and the frozen money at balance.",
        branches=txn["branches"],
        **seen.evidence(),
    )


@purchases_are_global_transactions.solution
def switch_to_global_transactions(ctx: Context) -> None:
    set_storefront_coordinator(ctx, TC_URL)
    for name in BUYERS:
        created = ctx.http.post(f"{STOREFRONT}/api/users", json={"name": name})
        if created.status_code != 409:
            created.raise_for_status()
    ctx.http.post(f"{STOREFRONT}/api/purchase", json={**PURCHASE, "user": BUYERS[0]}).raise_for_status()


def coordinator_unreachable(ctx: Context, url: str) -> CheckResult | None:
    """FAILED naming why the storefront's coordinator URL does not reach tc (a typo, Seata's port), else None."""
    if url.rstrip("/") == TC_URL:
        return None  # tc's own address: whether tc is up is tc's Deployment's and Service's to say
    address = httpx.URL(url)
    name = (address.host or "").split(".")[0]
    found = diagnose_service(ctx, name, port=address.port or 80, path="/health") if name else None
    health = found.answer.document if found and found.ready and found.answer else None
    if isinstance(health, dict) and health.get("service") == TC:
        return None  # another spelling of tc's address (tc.<namespace>.svc.cluster.local)
    if found is None or not found.ready:
        why = found.summary if found else "it names no Service"
    else:
        why = f"{url}/health answers as the {health.get('service') if isinstance(health, dict) else '?'} service"
    return CheckResult.failed(
        f"The storefront names {url} as its coordinator ({TC_VARIABLE}), but tc is not there: {why} "
        "Its purchases cannot begin a global transaction.",
        f"`kubectl describe deployment storefront` (Environment) against `kubectl get service {TC}` (PORT(S)): "
        f"tc answers at {TC_URL}.",
        f"Name tc's Service: `kubectl set env deployment/storefront {TC_VARIABLE}={TC_URL}`.",
        **dict(found.evidence if found else {}),
    )


def set_storefront_coordinator(ctx: Context, url: str | None, *, txn_timeout: float | None = None) -> None:
    """Set (or, with None, remove) BOOKSTORE_TC_URL in the storefront's pod template, and wait for its new pod.

    Read, change, replace: whoever set the variable before (kubectl set env, an apply), it is gone after.
    ``txn_timeout`` sets BOOKSTORE_TXN_TIMEOUT too (the chaos test's shorter global timeout).
    """
    deployment: Any = ctx.apps.read_namespaced_deployment("storefront", ctx.namespace)
    container = deployment.spec.template.spec.containers[0]
    changed = {TC_VARIABLE: url, TIMEOUT_VARIABLE: None if txn_timeout is None else f"{txn_timeout:g}"}
    container.env = [variable for variable in container.env or [] if variable.name not in changed]
    container.env += [V1EnvVar(name=name, value=value) for name, value in changed.items() if value is not None]
    ctx.apps.replace_namespaced_deployment("storefront", ctx.namespace, deployment)
    wait_for(lambda: _rolled_out(ctx, "storefront"), what="the storefront's new pod to be Ready", timeout=120)
    wait_until_reachable(ctx, ["storefront"])


def _rolled_out(ctx: Context, name: str) -> bool:
    deployment: Any = ctx.apps.read_namespaced_deployment(name, ctx.namespace)
    status = deployment.status
    return bool(
        (status.observed_generation or 0) >= deployment.metadata.generation
        and status.updated_replicas == status.replicas == status.ready_replicas == deployment.spec.replicas
    )


# --- 03.5: every fault point, and the invariants hold ---------------------------------------------------


def consistent_after_faults(ctx: Context, seen: CoordinatorState, audit: ShopAudit) -> CheckResult | None:
    """FAILED naming what is off (open transactions, broken invariants, hanging holds), or None when all is well."""
    if seen.unfinished:
        return unfinished_transactions(ctx, seen, audit)
    broken = audit.breaks(BUYERS)
    if broken:
        return CheckResult.failed(
            "Stock or money moved differently from what was bought: " + "; ".join(broken[:5]) + ".",
            f"Make sure the storefront names {TC_URL} ({TC_VARIABLE}) and that you bought as the lab's buyers "
            f"({', '.join(BUYERS)}) only after that.",
            **audit.evidence(),
        )
    orphaned = orphaned_holds(ctx.http, audit)
    if orphaned:
        releases = [
            f"`ctx.http.post('{cancel}', json={{'xid': '{row['xid']}', 'branch_id': {row['branch_id']}}})`"
            for _, row, cancel in orphaned[:10]
        ]
        return CheckResult.failed(
            "Held for transactions tc has finished or never knew, so nothing will ever confirm or cancel them: "
            + "; ".join(_held(kind, row) for kind, row, _ in orphaned[:5])
            + ".",
            f"`GET {TC_URL}/api/transactions/<xid>` says what tc knows of each (404: nothing, tc's log lost it or "
            "the try was made by hand); the participant's own cancel releases a hold, and its fence makes a second "
            "cancel do nothing.",
            "Release them: " + ", ".join(releases) + ".",
            **audit.evidence(),
        )
    hanging = audit.hanging(GLOBAL_TIMEOUT)
    if hanging:
        return CheckResult.failed(
            "Reservations or frozen money outlived the global timeout: " + "; ".join(hanging[:5]) + ".",
            f"Each names its order: find its transaction in GET {TC_URL}/api/transactions and read its events.",
            **audit.evidence(),
        )
    return None


def open_transactions(http: httpx.Client, counts: dict[str, int]) -> list[dict[str, Any]]:
    """tc's transactions that are not over (the newest 50 of each open status), with their branches."""
    found: list[dict[str, Any]] = []
    for status, count in counts.items():
        if count and status not in FINISHED:
            found.extend(_get(http, f"{TC_URL}/api/transactions?status={status}&limit=50")["transactions"])
    return found


def undecided_until(transactions: Iterable[dict[str, Any]], moment: float) -> list[dict[str, Any]]:
    """The transactions nobody decided (still `begin`) that tc's timeout leaves open until after `moment`."""
    return [t for t in transactions if t["status"] == "begin" and _epoch(t["deadline"]) > moment]


def unfinished_transactions(ctx: Context, seen: CoordinatorState, audit: ShopAudit) -> CheckResult:
    """FAILED naming what keeps tc's open transactions open, and what finishes them.

    A transaction nobody decided waits for its deadline: rolling it back, as tc's timeout will, is the
    fix. One decided waits for a participant to answer phase two: its answer (or silence) is the cause.
    """
    transactions = open_transactions(ctx.http, seen.counts)
    undecided = undecided_until(transactions, time.time())
    evidence = {**seen.evidence(), **audit.evidence()}
    if undecided:
        rollbacks = [f"`ctx.http.post('{TC_URL}/api/transactions/{t['xid']}/rollback', json={{}})`" for t in undecided]
        return CheckResult.failed(
            f"tc has {len(undecided)} transaction(s) nobody decided, holding what their tries reserved: "
            + "; ".join(
                f"{t['xid']} ({t['name']}, begun {t['begun_at']}, deadline {t['deadline']})" for t in undecided[:5]
            )
            + ".",
            "The storefront asks tc to commit or roll back once both tries have answered: these never got that far "
            "(the storefront failed in between, or they were begun by hand), and tc rolls them back only at their "
            f"deadline. `GET {TC_URL}/api/transactions/<xid>` shows each, with its log.",
            "Roll them back now, as their timeout would (tc then cancels their branches): "
            + ", ".join(rollbacks[:10])
            + ".",
            **evidence,
        )
    pending = [(t, branch) for t in transactions for branch in t["branches"] if branch["status"] not in FINISHED]
    for _, branch in pending:
        participant = diagnose_service(ctx, httpx.URL(branch["url"]).host, path=HEALTH_PATH)
        if not participant.ready:
            return participant.failed()
    told = "; ".join(
        f"{t['xid']} ({t['status']}): {branch['resource']} answered {branch['last_error'] or 'nothing yet'}"
        for t, branch in pending[:5]
    )
    lost = any("never tried" in (branch["last_error"] or "") for _, branch in pending)
    return CheckResult.failed(
        f"tc still has {len(transactions)} transaction(s) not finished after waiting: {told}.",
        f"`GET {TC_URL}/api/transactions/<xid>`: the events of each say what the participant answered tc's "
        "confirm or cancel, attempt after attempt; tc tries again every 2 s, so once that answer changes it finishes.",
        "The participant lost what its tries held (its data was not on its claim), so no attempt can succeed: start "
        f"the lab again with data that outlives pods: `lab reset 03`, then `kubectl apply -k {overlay_path(LAB_ID)}`."
        if lost
        else "Make the participant answer as its log says it should (`kubectl logs deployment/<participant>`), "
        "then run the check again.",
        **evidence,
    )


def orphaned_holds(http: httpx.Client, audit: ShopAudit) -> list[tuple[str, dict[str, Any], str]]:
    """The holds whose global transaction tc does not know or has finished: waiting cannot release them."""
    orphaned = []
    for kind, row, cancel in audit.holds():
        answer = http.get(f"{TC_URL}/api/transactions/{row['xid']}")
        if answer.status_code == 404 or (answer.is_success and answer.json().get("status") in FINISHED):
            orphaned.append((kind, row, cancel))
    return orphaned


def _held(kind: str, row: dict[str, Any]) -> str:
    amount = row.get("count", row.get("amount"))
    return f"{amount} {kind} for order {row['order_id']} ({row['user']}) by transaction {row['xid']}"


def _settled(ctx: Context) -> tuple[CoordinatorState, ShopAudit] | CheckResult:
    """tc's view and the shop's once tc has nothing open (waiting only while phase two can still finish),
    or FAILED with why they cannot be read: a participant or tc that cannot come up, a Service that does
    not answer."""
    not_ready = workloads_not_ready(ctx, (*PARTICIPANTS, TC))
    if not_ready is not None:
        return not_ready
    unreachable = await_service(ctx, *PARTICIPANTS, TC, path=HEALTH_PATH)
    if not unreachable.ready:
        return unreachable.failed()  # tc cannot finish phase two at a participant it cannot reach
    budget_ends = time.time() + time_left()

    def only_deadlines_left(state: CoordinatorState) -> bool:
        """Nothing open but transactions nobody decided, which tc rolls back only after this check's budget."""
        transactions = open_transactions(ctx.http, state.counts)
        return bool(transactions) and len(undecided_until(transactions, budget_ends)) == len(transactions)

    try:
        seen = observe(
            lambda: look_at_coordinator(ctx.http),
            lambda state: state.unfinished == 0 or only_deadlines_left(state),
            what="tc to finish every transaction",
            describe=lambda state: f"{state.unfinished} open",
        ).value
        return seen, audit_shop(ctx.http, EVERYONE)
    except ShopUnreachable as unreachable:
        return unreachable.result(ctx)


@check("03.5", title="Faults at every point of a global transaction left stock and money exact", timeout=60)
def faults_leave_no_trace(ctx: Context) -> CheckResult:
    settled = _settled(ctx)
    if isinstance(settled, CheckResult):
        return settled
    seen, audit = settled
    missing = sorted(DRILLED_POINTS - seen.struck_points())
    if missing:
        return CheckResult.failed(
            f"No purchase in tc's log was struck at {', '.join(missing)} yet.",
            f"The fault drill is one purchase per value of FAULT_DRILL, each with the header {FAULT_HEADER}.",
            f"Run it: `[ctx.http.post('{STOREFRONT}/api/purchase', json={{'user': '{BUYERS[0]}', 'book': "
            f"'{PURCHASE['book']}', 'count': 1}}, headers={{'{FAULT_HEADER}': fault}}) "
            f"for fault in {list(FAULT_DRILL)!r}]`.",
            **seen.evidence(),
        )
    problem = consistent_after_faults(ctx, seen, audit)
    if problem:
        return problem
    rolled_back = sum(1 for t in seen.purchases if t["status"] != "committed")
    return CheckResult.passed(
        f"Every fault point was struck ({len(DRILLED_POINTS)} points); tc rolled back {rolled_back} purchase(s) and "
        "finished every commit, and every book and buyer adds up exactly, with nothing held.",
        **seen.evidence(),
        **audit.evidence(),
    )


@faults_leave_no_trace.solution
def drill_the_faults(ctx: Context) -> None:
    for index, fault in enumerate(FAULT_DRILL):
        ctx.http.post(
            f"{STOREFRONT}/api/purchase",
            json={**PURCHASE, "user": BUYERS[index % len(BUYERS)], "count": 1},
            headers={FAULT_HEADER: fault},
        )


# --- 03.6: a participant deleted under load --------------------------------------------------------------


@dataclass(frozen=True)
class Replacement:
    """A participant pod that started while purchases went on, and how long tc took to finish after it."""

    service: str
    pod: str
    ready_at: float
    before: int
    after: int
    recovered_in: float | None

    def evidence(self) -> dict[str, object]:
        recovered = None if self.recovered_in is None else round(self.recovered_in, 2)
        return {
            "replaced pod": f"{self.service}: {self.pod}",
            "purchases begun before / after it was Ready": f"{self.before} / {self.after}",
            "seconds from Ready to the last open transaction finished": recovered,
        }


def find_replacement(ctx: Context, seen: CoordinatorState) -> Replacement | None:
    """The newest stock or balance pod that became Ready between two batches of purchases, if any."""
    found = []
    for service in PARTICIPANTS:
        pods: list[Any] = ctx.core.list_namespaced_pod(ctx.namespace, label_selector=f"app={service}").items
        for pod in pods:
            ready = next((c for c in pod.status.conditions or [] if c.type == "Ready" and c.status == "True"), None)
            if ready is None or ready.last_transition_time is None:
                continue
            ready_at = ready.last_transition_time.timestamp()
            begun = [_epoch(t["begun_at"]) for t in seen.purchases]
            before = sum(1 for at in begun if at < pod.metadata.creation_timestamp.timestamp())
            after = sum(1 for at in begun if at > ready_at)
            if before and after:
                finished = [
                    _epoch(t["finished_at"])
                    for t in seen.purchases
                    if t["finished_at"] and _epoch(t["begun_at"]) < ready_at
                ]
                last = max(finished, default=None)
                recovered = None if last is None else max(0.0, last - ready_at)
                found.append(Replacement(service, pod.metadata.name, ready_at, before, after, recovered))
    return max(found, key=lambda replacement: replacement.ready_at, default=None)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@check("03.6", title="A participant pod deleted under load: tc recovered and everything adds up", timeout=90)
def recovered_from_a_deleted_pod(ctx: Context) -> CheckResult:
    settled = _settled(ctx)
    if isinstance(settled, CheckResult):
        return settled
    seen, audit = settled
    replacement = find_replacement(ctx, seen)
    if replacement is None:
        return CheckResult.failed(
            "No stock or balance pod was replaced while purchases went on.",
            "Step 7 deletes the stock pod while purchases run: the check looks for a stock or balance pod that "
            "became Ready after purchases begun before it was created, with purchases begun after it was Ready.",
            "Run step 7 (40 purchases, the stock pod deleted once 10 are answered, 4 more once its replacement "
            "serves): `from checkers.lab03_transactions import delete_a_participant_under_load; "
            "delete_a_participant_under_load(ctx)`.",
            **seen.evidence(),
        )
    problem = consistent_after_faults(ctx, seen, audit)
    if problem:
        return problem
    return CheckResult.passed(
        f"{replacement.service} pod {replacement.pod} replaced the deleted one mid-load; tc finished every "
        "transaction, and every book and buyer adds up exactly, with nothing held.",
        **replacement.evidence(),
        **seen.evidence(),
        **audit.evidence(),
    )


@recovered_from_a_deleted_pod.solution
def delete_a_participant_under_load(ctx: Context) -> None:
    load = PurchaseLoad(ctx.http, BUYERS, purchases=40, concurrency=4)
    load.start()
    try:
        wait_for(lambda: load.done >= 10, what="10 purchases of the load", timeout=60)
        delete_pods(ctx, "stock")
    finally:
        load.wait()
    wait_until_ready(ctx, PARTICIPANTS)
    # A few purchases once the new pod serves, so the log shows life on both sides of the replacement.
    PurchaseLoad(ctx.http, BUYERS, purchases=4, concurrency=2).run()


def delete_pods(ctx: Context, service: str) -> list[str]:
    """Delete the pods of ``service`` (its Deployment makes new ones); their names."""
    pods: list[Any] = ctx.core.list_namespaced_pod(ctx.namespace, label_selector=f"app={service}").items
    for pod in pods:
        try:
            ctx.core.delete_namespaced_pod(pod.metadata.name, ctx.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
    return [pod.metadata.name for pod in pods]


# --- 03.7: the fix-it challenge ---------------------------------------------------------------------------


def start_challenge(ctx: Context) -> None:
    """Break the shop as the challenge describes (the notebook calls this; the cause stays hidden)."""
    set_storefront_coordinator(ctx, None)
    for name in CHALLENGE_VICTIMS:
        created = ctx.http.post(f"{STOREFRONT}/api/users", json={"name": name})
        if created.status_code != 409:
            created.raise_for_status()
        for fault in (BREAK_A_PURCHASE, None, BREAK_A_PURCHASE):
            ctx.http.post(
                f"{STOREFRONT}/api/purchase",
                json={"user": name, "book": "00005", "count": 1},
                headers={FAULT_HEADER: fault} if fault else None,
            )


@check("03.7", title="Challenge: customers were charged for books they never got", timeout=60)
def challenge_solved(ctx: Context) -> CheckResult:
    settled = _settled(ctx)
    if isinstance(settled, CheckResult):
        return settled
    _, audit = settled
    if storefront_coordinator(ctx) is None:
        return CheckResult.failed(
            "New purchases can still take money without giving the book.",
            "Compare the storefront's Deployment with the one of step 4 (`kubectl describe deployment storefront`): "
            "what does a purchase go through?",
            f"Purchases go through tc again once the storefront names it: "
            f"`kubectl set env deployment/storefront {TC_VARIABLE}={TC_URL}`.",
            **audit.evidence(),
        )
    broken = audit.breaks()
    if broken:
        for_nothing = [
            payment["id"]
            for ledger in audit.users.values()
            for payment in ledger.payments
            if payment["refunded_at"] is None and payment["id"] not in {order["id"] for order in ledger.orders}
        ]
        refunds = [f"`ctx.http.post('http://balance/api/payments/{payment}/refund')`" for payment in for_nothing]
        return CheckResult.failed(
            "Some customers are still out of pocket: " + "; ".join(broken[:5]) + ".",
            f"Once tc has no transaction open (GET {TC_URL}/api/transactions), compare for each user GET "
            "http://balance/api/users/<name>/payments with GET http://stock/api/users/<name>/orders: refund each "
            "payment that has no order (POST http://balance/api/payments/<id>/refund).",
            "Refund the payments that bought nothing: " + ", ".join(refunds[:10]) + "."
            if refunds
            else f"Wait until tc has finished every transaction (GET {TC_URL}/api/transactions), then look again.",
            **audit.evidence(),
        )
    return CheckResult.passed(
        "Purchases go through tc again, and every customer has paid exactly for the books they own.",
        **audit.evidence(),
    )


@challenge_solved.solution
def make_customers_whole(ctx: Context) -> None:
    if storefront_coordinator(ctx) is None:
        set_storefront_coordinator(ctx, TC_URL)
    # Reconcile settled books only: while tc confirms a purchase, its payment may exist a moment before its order.
    wait_for(lambda: look_at_coordinator(ctx.http).unfinished == 0, what="tc to finish every transaction", timeout=90)
    for ledger in audit_shop(ctx.http, EVERYONE).users.values():
        ordered = {order["id"] for order in ledger.orders}
        for payment in ledger.payments:
            if payment["refunded_at"] is None and payment["id"] not in ordered:
                ctx.http.post(f"http://balance/api/payments/{payment['id']}/refund").raise_for_status()


def reset(ctx: Context) -> None:
    """Remove the four services, their Services and their claims (the data goes with them)."""
    delete_lab_objects(ctx, LAB_ID)
