"""Chaos, bounded: 500 purchases from 8 clients while every fault point strikes and stock, balance and tc
pods are deleted at random moments; then the invariants must hold exactly.

The judge is what each user owns (books at stock, money at balance, both per order) against what the
clients were told they bought, so a database that lost its data (or reset itself) cannot hide a loss.
After recovery nothing may stay reserved or frozen, and no order may appear twice. The seconds from
the end of the load to every transaction resolved are printed (and kept as a test property).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from checkers import solve
from checkers.lab01_monolith import wait_until_ready
from checkers.lab03_transactions import (
    TC_URL,
    PurchaseLoad,
    audit_shop,
    delete_pods,
    look_at_coordinator,
    set_storefront_coordinator,
)
from labkit import wait_for
from labkit.connection import Connection
from tests.integration.conftest import LocalCluster
from tests.integration.lab_support import connection_to

pytestmark = pytest.mark.integration

PURCHASES = 500
CLIENTS = 8
USERS = [f"chaos-{n}" for n in range(CLIENTS)]
#: Shorter than the default 60 s so a purchase whose storefront crashed is rolled back within the test.
GLOBAL_TIMEOUT = 10.0
#: Every fault point with each way to fail, spread over the load (crashes once each: a container that
#: crashes again waits out the kubelet's back-off, as on a real node).
FAILURES = [
    "stock.try=fail",
    "stock.try=fail-after",
    "balance.try=fail",
    "balance.try=fail-after",
    "storefront.after-try=fail",
    "storefront.after-try=fail-after",
    "tc.before-phase-two=fail",
    "tc.before-phase-two=fail-after",
    "stock.confirm=fail",
    "stock.confirm=fail-after",
    "balance.confirm=fail",
    "balance.confirm=fail-after",
    "stock.try=fail, balance.cancel=fail",
    "stock.try=fail, balance.cancel=fail-after",
    "balance.try=fail, stock.cancel=fail",
    "balance.try=fail, stock.cancel=fail-after",
]
CRASHES = {
    60: "storefront.after-try=crash",
    160: "tc.before-phase-two=crash",
    260: "stock.confirm=crash",
    360: "balance.try=crash",
}
#: How long a client keeps asking again (same Idempotency-Key) while the shop does not answer.
RETRY_FOR = 20.0
#: When (after how many answered purchases) a random participant or tc pod is deleted.
DELETIONS = (90, 200, 300, 420)


def fault_plan(seed: int) -> list[str | None]:
    """One entry per purchase: about a third struck by a failure, the crashes at their places."""
    chooser = random.Random(seed)
    plan: list[str | None] = [chooser.choice(FAILURES) if chooser.random() < 0.35 else None for _ in range(PURCHASES)]
    for index, crash in CRASHES.items():
        plan[index] = crash
    return plan


@pytest.fixture(scope="module")
def ctx(cluster: LocalCluster) -> Iterator[Connection]:
    with connection_to(cluster) as connection:
        solve(connection, "03.1")
        solve(connection, "03.3")
        set_storefront_coordinator(connection, TC_URL, txn_timeout=GLOBAL_TIMEOUT)
        for name in USERS:
            connection.http.post("http://storefront/api/users", json={"name": name}).raise_for_status()
        yield connection


def test_invariants_hold_exactly_after_faults_and_pod_deletions(
    ctx: Connection, record_property: pytest.RecordProperty
) -> None:
    seed = random.randrange(2**32)
    chooser = random.Random(seed)
    load = PurchaseLoad(
        ctx.http, USERS, purchases=PURCHASES, concurrency=CLIENTS, faults=fault_plan(seed), retry_for=RETRY_FOR
    )
    deleted: list[str] = []

    def delete_at_random() -> None:
        for after in DELETIONS:
            while load.done < after and load.wait_a_moment(0.1):
                pass
            if not load.wait_a_moment(0):
                return
            service = chooser.choice(["stock", "balance", "tc"])
            deleted.extend(f"{service}/{pod}" for pod in delete_pods(ctx, service))

    started = time.monotonic()
    load.start()
    chaos = threading.Thread(target=delete_at_random, name="chaos")
    chaos.start()
    statuses = load.wait(timeout=240)
    chaos.join(timeout=60)
    load_seconds = time.monotonic() - started

    wait_until_ready(ctx, ["storefront", "stock", "balance", "tc"], timeout=120)
    ended = time.monotonic()
    wait_for(lambda: look_at_coordinator(ctx.http).unfinished == 0, what="tc to resolve every transaction", timeout=90)
    recovery = time.monotonic() - ended
    record_property("recovery_seconds", round(recovery, 2))
    print(
        f"\nchaos seed {seed}: {PURCHASES} purchases in {load_seconds:.1f}s {dict(statuses)}; "
        f"deleted {deleted}; every transaction resolved {recovery:.2f}s after the load"
    )
    assert deleted, "the chaos thread deleted no pod"

    audit = audit_shop(ctx.http, USERS)
    assert audit.breaks() == [], f"seed {seed}"
    assert audit.hanging(older_than=0) == [], f"seed {seed}: held after recovery"

    # What the clients were told they bought is there, once, with its money: a lost database would show.
    orders = {order["id"]: (name, order) for name, ledger in audit.users.items() for order in ledger.orders}
    all_orders = [order["id"] for ledger in audit.users.values() for order in ledger.orders]
    assert len(all_orders) == len(set(all_orders)), "an order appears twice"
    acknowledged = Counter(order["id"] for _, order in load.acknowledged)
    assert max(acknowledged.values(), default=1) == 1, "one purchase was answered with two orders"
    missing = [(user, order["id"]) for user, order in load.acknowledged if order["id"] not in orders]
    assert not missing, f"acknowledged orders the shop does not have: {missing[:5]}"
    for user, order in load.acknowledged:
        assert orders[order["id"]] == (user, order), order
    committed = look_at_coordinator(ctx.http, limit=1000).counts.get("committed", 0)
    assert committed == len(orders), "every committed global transaction is one order, and no order is without one"
    assert statuses.get("201", 0) == len(load.acknowledged) > PURCHASES // 5
