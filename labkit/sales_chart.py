"""Lab 03's live chart: what the shelf sold and what the customers paid, second by second.

    load = PurchaseLoad(ctx.http, ["eve"], purchases=20, faults=["storefront.after-payment=fail"])
    watch_sales(load, ["eve"])

While the load runs, a :class:`labkit.charts.LiveChart` redraws each second: the value of the books
that left the shelf and the money taken from the watched users, in fen per second. When every
purchase moves both, the two lines lie on each other; a purchase that fails half-way pulls them apart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from checkers.lab03_transactions import PurchaseLoad, ShopAudit, audit_shop
from labkit._default import resolve
from labkit.charts import LiveChart

if TYPE_CHECKING:
    from checkers import Context

__all__ = ["watch_sales"]

SOLD = "books sold"
TAKEN = "money taken"


def _totals(audit: ShopAudit) -> tuple[int, int]:
    """(fen of books sold, fen taken from the audited users, frozen included)."""
    return audit.value_sold, sum(ledger.spent + ledger.frozen for ledger in audit.users.values())


def watch_sales(
    load: PurchaseLoad, users: Sequence[str], *, every: float = 1.0, connection: Context | None = None
) -> dict[str, int]:
    """Run ``load`` with a live chart of books sold vs money taken (fen/s); the load's answers by status."""
    ctx = resolve(connection)
    chart = LiveChart("Books sold vs money taken", [SOLD, TAKEN], ylabel="fen per second")
    started = last_at = time.monotonic()
    last = _totals(audit_shop(ctx.http, users))
    load.start()
    running = True
    while running:
        running = load.wait_a_moment(every)
        now, seen = time.monotonic(), _totals(audit_shop(ctx.http, users))
        span = max(now - last_at, 1e-6)
        chart.add(now - started, **{SOLD: (seen[0] - last[0]) / span, TAKEN: (seen[1] - last[1]) / span})
        last_at, last = now, seen
    chart.close()
    print(f"in all: books sold for {last[0]} fen, {last[1]} fen taken from {', '.join(users)}")
    return load.wait()
