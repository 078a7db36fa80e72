"""Live line charts for the labs: traffic per version, replicas over time, stock sold against money taken.

A `LiveChart` collects points as a lab drives load and redraws itself in place: in JupyterLab the
cell's output updates while the loop runs (an IPython display handle), and under papermill or
nbgrader the last drawing stays in the notebook as a PNG. Outside IPython it prints one line per
redraw, so a terminal run still shows progress. matplotlib draws off-screen (its object API, no
pyplot state), so charts work without a display and never pop up windows.

    chart = labkit.charts.LiveChart("Traffic per version", ["v1", "v2"], ylabel="requests/s")
    for second in range(30):
        chart.add(second, v1=count_v1, v2=count_v2)
    chart.close()      # the final drawing
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Seconds between two redraws while points keep arriving: fast enough to look live, cheap enough
#: that a load loop is not slowed by drawing.
REDRAW_INTERVAL = 0.5
#: The palette: distinguishable, and the same series gets the same colour in every chart.
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


@dataclass
class Series:
    """One line: its name, and the (x, y) points it has so far."""

    name: str
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)


class LiveChart:
    """A line chart of named series over a shared x axis, redrawn in place as points arrive."""

    def __init__(
        self,
        title: str,
        series: Sequence[str],
        *,
        ylabel: str = "",
        xlabel: str = "seconds",
        stacked: bool = False,
        size: tuple[float, float] = (7.0, 3.2),
    ) -> None:
        if not series:
            raise ValueError("a chart needs at least one series")
        self.title = title
        self.xlabel = xlabel
        self.ylabel = ylabel
        self.stacked = stacked
        self.size = size
        self.series = {name: Series(name) for name in series}
        self._handle: Any = None
        self._drawn_at = 0.0
        self._pending = False

    def add(self, x: float, **values: float) -> None:
        """Add one point per named series at `x` (a series left out gets no point), then maybe redraw."""
        unknown = set(values) - set(self.series)
        if unknown:
            raise ValueError(f"no series named {sorted(unknown)} in this chart (it has {list(self.series)})")
        for name, value in values.items():
            self.series[name].xs.append(float(x))
            self.series[name].ys.append(float(value))
        self._pending = True
        if time.monotonic() - self._drawn_at >= REDRAW_INTERVAL:
            self.draw()

    def extend(self, points: Iterable[tuple[float, Mapping[str, float]]]) -> None:
        """Add many points at once, then draw."""
        for x, values in points:
            self.add(x, **values)
        self.draw()

    def close(self) -> None:
        """Draw what arrived since the last redraw: the chart the notebook keeps."""
        if self._pending or self._handle is None:
            self.draw()

    def png(self) -> bytes:
        """The chart as PNG bytes."""
        from matplotlib.figure import Figure

        figure = Figure(figsize=self.size, dpi=100, layout="constrained")
        axes = figure.add_subplot()
        drawn = [series for series in self.series.values() if series.xs]
        if self.stacked and drawn:
            xs = drawn[0].xs
            if all(series.xs == xs for series in drawn):
                axes.stackplot(xs, [s.ys for s in drawn], labels=[s.name for s in drawn], colors=self._colours(drawn))
            else:
                raise ValueError("a stacked chart needs every series to have the same x values")
        else:
            for series, colour in zip(drawn, self._colours(drawn), strict=True):
                axes.plot(series.xs, series.ys, label=series.name, color=colour, linewidth=1.8)
        axes.set_title(self.title)
        axes.set_xlabel(self.xlabel)
        if self.ylabel:
            axes.set_ylabel(self.ylabel)
        axes.grid(alpha=0.3)
        if drawn:
            axes.legend(loc="upper left", fontsize="small")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()

    def summary(self) -> str:
        """One line: each series' last value, for terminals and logs."""
        last = ", ".join(f"{series.name}={series.ys[-1]:g}" for series in self.series.values() if series.ys)
        return f"{self.title}: {last or 'no points yet'}"

    def draw(self) -> None:
        """Redraw now: update the notebook output in place, or print a summary line outside IPython."""
        self._drawn_at = time.monotonic()
        self._pending = False
        if not _in_ipython():
            print(self.summary(), flush=True)
            return
        from IPython.display import Image, display

        image = Image(data=self.png(), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)

    def _repr_png_(self) -> bytes:
        return self.png()

    def _colours(self, drawn: list[Series]) -> list[str]:
        names = list(self.series)
        return [COLOURS[names.index(series.name) % len(COLOURS)] for series in drawn]


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None
