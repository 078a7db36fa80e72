"""The class's progress: which checks pass right now, per attendee namespace, as a table or a live view.

On a real cluster the attendees are the namespaces labelled `bookstore.workshop/attendee` that the
instructor can read; on localcluster (or when none is labelled) the one attendee is the connection's
namespace. Each namespace's checks run live, in parallel across namespaces, with a short look
instead of each check's full wait: progress shows what is true now, not what may become true.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from checkers import Check, CheckResult, Status, labs, run_check

if TYPE_CHECKING:
    from checkers import Context

#: The label that marks an attendee's namespace; its value is the attendee's name.
ATTENDEE_LABEL = "bookstore.workshop/attendee"
#: Seconds a check may wait for eventual state while measuring progress (a look, not a wait).
LOOK = 2.0
#: Namespaces measured at once.
WORKERS = 8


@dataclass(frozen=True)
class Attendee:
    """Who is measured: the attendee's name and the namespace their work lives in."""

    name: str
    namespace: str


@dataclass(frozen=True)
class AttendeeProgress:
    """One attendee's checks as they stand now."""

    attendee: Attendee
    results: tuple[CheckResult, ...]

    @property
    def passed(self) -> int:
        return sum(1 for result in self.results if result.status is Status.PASSED)

    def status_of(self, check_id: str) -> Status | None:
        return next((result.status for result in self.results if result.check_id == check_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attendee": self.attendee.name,
            "namespace": self.attendee.namespace,
            "passed": self.passed,
            "checks": {result.check_id: str(result.status) for result in self.results},
            "results": [result.to_dict() for result in self.results],
        }


def attendees(ctx: Context) -> list[Attendee]:
    """The attendee namespaces the caller can see, or the connection's own namespace if none is labelled."""
    listed = ctx.core.list_namespace(label_selector=ATTENDEE_LABEL)
    found = []
    for item in listed.items:
        metadata = item.metadata
        assert metadata is not None  # every listed namespace has its metadata
        name = str(metadata.name)
        found.append(Attendee((metadata.labels or {}).get(ATTENDEE_LABEL) or name, name))
    return sorted(found, key=lambda one: one.name) or [Attendee(ctx.namespace, ctx.namespace)]


def course_checks(lab_ids: Sequence[str] = ()) -> list[Check]:
    """Every check of the selected labs (all labs by default), in course order."""
    selected = [lab for lab in labs().values() if not lab_ids or lab.lab_id in lab_ids or lab.number in lab_ids]
    return [check for lab in selected for check in lab.checks]


def measure(
    connect: Callable[[str], Context],
    people: Sequence[Attendee],
    checks: Sequence[Check],
    *,
    look: float = LOOK,
    workers: int = WORKERS,
) -> list[AttendeeProgress]:
    """Run `checks` in each attendee's namespace (a connection from `connect(namespace)`), in parallel."""

    def one(attendee: Attendee) -> AttendeeProgress:
        ctx = connect(attendee.namespace)
        try:
            return AttendeeProgress(attendee, tuple(run_check(check, ctx, budget=look) for check in checks))
        finally:
            close = getattr(ctx, "close", None)
            if close is not None:
                close()

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(people)))) as pool:
        return list(pool.map(one, people))


SYMBOLS = {Status.PASSED: "✔", Status.FAILED: "✘", Status.ERROR: "⚠"}
COLOURS = {Status.PASSED: "#1b873f", Status.FAILED: "#c62828", Status.ERROR: "#b26a00"}


def table(progress: Sequence[AttendeeProgress], checks: Sequence[Check]) -> str:
    """A text table: one row per attendee, one column per check, and the count passed."""
    name_width = max([len("attendee"), *(len(row.attendee.name) for row in progress)])
    header = f"{'attendee':<{name_width}}  " + " ".join(f"{c.check_id:>5}" for c in checks) + "  passed"
    lines = [header]
    for row in progress:
        cells = " ".join(f"{SYMBOLS.get(row.status_of(c.check_id), '?'):>5}" for c in checks)  # type: ignore[arg-type]
        lines.append(f"{row.attendee.name:<{name_width}}  {cells}  {row.passed}/{len(checks)}")
    return "\n".join(lines)


def table_html(progress: Sequence[AttendeeProgress], checks: Sequence[Check]) -> str:
    """The same table in HTML, each cell coloured by its status and titled with the check's message."""
    head = "".join(f'<th title="{html.escape(c.title)}">{c.check_id}</th>' for c in checks)
    rows = []
    for row in progress:
        cells = []
        for check in checks:
            result = next((r for r in row.results if r.check_id == check.check_id), None)
            status = result.status if result is not None else None
            colour = COLOURS.get(status, "#888") if status else "#888"  # type: ignore[arg-type]
            symbol = SYMBOLS.get(status, "?") if status else "?"  # type: ignore[arg-type]
            title = html.escape(result.message if result is not None else "")
            cells.append(f'<td style="color:{colour};text-align:center" title="{title}">{symbol}</td>')
        rows.append(
            f"<tr><td>{html.escape(row.attendee.name)}</td>{''.join(cells)}"
            f"<td style='text-align:right'>{row.passed}/{len(checks)}</td></tr>"
        )
    return (
        "<style>table.lab-progress td, table.lab-progress th {padding: 2px 8px}</style>"
        '<table class="lab-progress"><thead><tr><th>attendee</th>'
        f"{head}<th>passed</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


class Dashboard:
    """The instructor's live view in a notebook: the table and a chart of checks passed per attendee.

    `Dashboard(...).start(every=15)` refreshes in a background thread while the notebook stays
    usable; `refresh()` measures once. The chart counts, per check, how many attendees pass it.
    """

    def __init__(self, connect: Callable[[str], Context], people: Sequence[Attendee], checks: Sequence[Check]) -> None:
        import ipywidgets

        self._connect = connect
        self.people = list(people)
        self.checks = list(checks)
        self.progress: list[AttendeeProgress] = []
        self.refreshes = 0
        self.view = ipywidgets.HTML()
        self.chart = ipywidgets.Image(format="png", layout=ipywidgets.Layout(width="min(100%, 640px)"))
        self.widget = ipywidgets.VBox([self.view, self.chart])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> list[AttendeeProgress]:
        """Measure every attendee now and redraw the table and chart."""
        self.progress = measure(self._connect, self.people, self.checks)
        self.refreshes += 1
        self.view.value = (
            f"<b>Class progress</b> — refresh {self.refreshes}, {len(self.people)} attendee(s)"
            + table_html(self.progress, self.checks)
        )
        self.chart.value = self._chart_png()
        return self.progress

    def start(self, every: float = 15.0) -> Dashboard:
        """Refresh now, then every `every` seconds in the background until stop()."""
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(every,), name="lab-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self, every: float) -> None:
        while not self._stop.wait(every):
            self.refresh()

    def _chart_png(self) -> bytes:
        import io

        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        passing = [sum(1 for row in self.progress if row.status_of(c.check_id) is Status.PASSED) for c in self.checks]
        figure = Figure(figsize=(max(4.0, 0.45 * len(self.checks)), 2.6), dpi=100, layout="constrained")
        axes = figure.add_subplot()
        axes.bar([c.check_id for c in self.checks], passing, color=COLOURS[Status.PASSED])
        axes.set_ylim(0, max(1, len(self.people)))
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("attendees passing")
        axes.tick_params(axis="x", labelrotation=60, labelsize=8)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def dashboard(lab_ids: Sequence[str] = (), *, every: float | None = 15.0) -> Dashboard:
    """The live progress view for this cluster: every attendee the connection can see, every lab's checks."""
    from labkit.connection import connect

    with connect() as ctx:
        people = attendees(ctx)
    view = Dashboard(lambda namespace: connect(namespace=namespace), people, course_checks(lab_ids))
    return view.start(every) if every else view
