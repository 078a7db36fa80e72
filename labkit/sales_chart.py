"""A live chart for lab 03: what the shelf sold and what the customers paid, second by second.

    chart = SalesChart(["eve"])
    chart.watch(PurchaseLoad(ctx.http, ["eve"], purchases=20, faults=["storefront.after-payment=fail"]))

While the load runs, the chart redraws every second in the notebook: the value of the books that
left the shelf and the money taken from the users, in fen per second. When every purchase moves both,
the two lines lie on each other; a purchase that fails half-way pulls them apart. Outside a notebook
(papermill, a terminal) the last drawing stays as text: one line per second.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from checkers.lab03_transactions import PurchaseLoad, audit_shop
from labkit._default import resolve

if TYPE_CHECKING:
    from checkers import Context

__all__ = ["SalesChart", "SalesSample"]

WIDTH, HEIGHT, MARGIN = 640, 220, 40
COLOURS = {"sold": "#1b873f", "taken": "#c62828"}


@dataclass(frozen=True)
class SalesSample:
    """Totals at one moment: fen of books sold (price × copies sold) and fen taken from the watched users."""

    at: float
    value_sold: int
    money_taken: int


@dataclass
class SalesChart:
    """Books sold vs money taken, per second, for ``users``; :meth:`watch` draws it while a load runs."""

    users: Sequence[str]
    connection: Context | None = None
    samples: list[SalesSample] = field(default_factory=list)

    def sample(self) -> SalesSample:
        ctx = resolve(self.connection)
        audit = audit_shop(ctx.http, self.users)
        taken = sum(ledger.spent + ledger.frozen for ledger in audit.users.values())
        seen = SalesSample(time.time(), audit.value_sold, taken)
        self.samples.append(seen)
        return seen

    def watch(self, load: PurchaseLoad, *, every: float = 1.0) -> dict[str, int]:
        """Run ``load`` and redraw after each ``every`` seconds until it is done; its answers by status."""
        from IPython.display import display

        self.sample()
        handle = display(self, display_id=True)
        load.start()
        while load.wait_a_moment(every):
            self.sample()
            if handle is not None:
                handle.update(self)
        self.sample()
        if handle is not None:
            handle.update(self)
        return load.wait()

    def rates(self) -> list[tuple[float, int, int]]:
        """(seconds since the first sample, fen sold per second, fen taken per second) between samples."""
        rows = []
        for before, after in zip(self.samples, self.samples[1:], strict=False):
            span = max(after.at - before.at, 1e-6)
            rows.append(
                (
                    after.at - self.samples[0].at,
                    round((after.value_sold - before.value_sold) / span),
                    round((after.money_taken - before.money_taken) / span),
                )
            )
        return rows

    def __repr__(self) -> str:
        lines = ["  second   sold fen/s  taken fen/s"]
        lines += [f"  {second:6.1f}  {sold:11d}  {taken:11d}" for second, sold, taken in self.rates()]
        if self.samples:
            last = self.samples[-1]
            lines.append(f"  total: books sold worth {last.value_sold} fen, money taken {last.money_taken} fen")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = self.rates()
        if not rows:
            return "<i>waiting for the first second of purchases…</i>"
        top = max(1, *(max(sold, taken) for _, sold, taken in rows))
        span = max(rows[-1][0], 1.0)

        def points(column: int) -> str:
            return " ".join(
                f"{MARGIN + (row[0] / span) * (WIDTH - 2 * MARGIN):.1f},"
                f"{HEIGHT - MARGIN - (row[column] / top) * (HEIGHT - 2 * MARGIN):.1f}"
                for row in rows
            )

        last = self.samples[-1]
        legend = (
            f'<tspan fill="{COLOURS["sold"]}">books sold (fen/s)</tspan> · '
            f'<tspan fill="{COLOURS["taken"]}">money taken (fen/s)</tspan>'
        )
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-size="12">'
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white" stroke="#ccc"/>'
            f'<text x="{MARGIN}" y="20">{legend}</text>'
            f'<text x="{MARGIN}" y="{HEIGHT - 10}">{span:.0f} s · peak {top} fen/s · totals: sold '
            f"{last.value_sold}, taken {last.money_taken} fen</text>"
            f'<polyline fill="none" stroke="{COLOURS["taken"]}" stroke-width="3" points="{points(2)}"/>'
            f'<polyline fill="none" stroke="{COLOURS["sold"]}" stroke-width="2" points="{points(1)}"/>'
            f"</svg><pre>{html.escape(repr(self).splitlines()[-1])}</pre>"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))
