"""A check's verdict in a notebook: a coloured widget, with plain text for terminals and papermill.

While the check runs, a live line says what it waits for and until when (labkit._progress). Its
hints are a ladder (`CheckResult.hints`): the panel shows the first; the button under it, or
`labkit.hint("02.6")`, shows the next, up to the last, which is the literal fix.
"""

from __future__ import annotations

import html
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from checkers import CHECK_ID_PATTERN, CheckResult, EnvironmentUnavailable, Status, open_context, run_check, unreachable
from checkers import select as select_checks
from labkit._default import resolve
from labkit._progress import LiveProgress, in_kernel
from labkit._text import rich_text

if TYPE_CHECKING:
    import ipywidgets

    from checkers import Context

COLOURS = {Status.PASSED: "#1b873f", Status.FAILED: "#c62828", Status.ERROR: "#b26a00"}
ICONS = {Status.PASSED: "✔", Status.FAILED: "✘", Status.ERROR: "⚠"}
WIDGET_MIMETYPE = "application/vnd.jupyter.widget-view+json"

#: The panel last shown for each check id, so `labkit.hint(...)` climbs the ladder the attendee sees.
_SHOWN: dict[str, CheckPanel] = {}


class CheckPanel:
    """Shows a CheckResult: a widget in JupyterLab, HTML in static views, text everywhere else."""

    def __init__(self, result: CheckResult) -> None:
        self.result = result
        #: How many hints of the ladder are shown (the first comes with the verdict).
        self.shown = 1 if result.hints else 0
        self._hints_html: ipywidgets.HTML | None = None
        self._button: ipywidgets.Button | None = None

    def raise_for_status(self) -> None:
        """Raise unless PASSED: hidden test cells call this so nbgrader grades the step (and show nothing)."""
        self.result.raise_for_status()

    @property
    def more_hints(self) -> int:
        return len(self.result.hints) - self.shown

    def reveal(self) -> str | None:
        """Show the next hint (in the widget too, if it is on screen); the hint, or None at the end."""
        if not self.more_hints:
            return None
        self.shown += 1
        self._refresh_widget()
        return self.result.hints[self.shown - 1]

    def __str__(self) -> str:
        result = self.result
        lines = [f"{ICONS[result.status]} {result.check_id} {result.status}: {result.title}", f"  {result.message}"]
        for level, hint in enumerate(result.hints[: self.shown], start=1):
            lines.append(f"  {self._hint_label(level)}: {hint}")
        if self.more_hints:
            lines.append(f"  (stuck? another hint: labkit.hint({result.check_id!r}))")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _hint_label(self, level: int) -> str:
        count = len(self.result.hints)
        return "Hint" if count == 1 else f"Hint {level} of {count}"

    def _shown_hints_html(self) -> str:
        return "".join(
            f"<div><i>{self._hint_label(level)}:</i> {rich_text(hint)}</div>"
            for level, hint in enumerate(self.result.hints[: self.shown], start=1)
        )

    def _header_html(self, hints: str) -> str:
        result = self.result
        return (
            f'<div style="border-left:6px solid {COLOURS[result.status]};padding:4px 10px">'
            f'<div style="color:{COLOURS[result.status]};font-weight:bold">{ICONS[result.status]} '
            f"{html.escape(result.check_id)} {result.status}: {html.escape(result.title)}</div>"
            f"<div>{rich_text(result.message)}</div>{hints}</div>"
        )

    def _evidence_html(self) -> str:
        return f'<pre style="font-size:90%">{html.escape(self.result.evidence_text())}</pre>'

    def _repr_html_(self) -> str:
        """Static HTML (nbviewer, exported notebooks): the further hints folded, in order."""
        folded = ""
        if self.more_hints:
            rest = "".join(
                f"<div><i>{self._hint_label(level)}:</i> {rich_text(hint)}</div>"
                for level, hint in enumerate(self.result.hints, start=1)
                if level > self.shown
            )
            folded = f"<details><summary>Stuck? More hints</summary>{rest}</details>"
        evidence = (
            f"<details><summary>Evidence</summary>{self._evidence_html()}</details>" if self.result.evidence else ""
        )
        return f"{self._header_html(self._shown_hints_html())}{folded}{evidence}"

    def widget(self) -> ipywidgets.Widget:
        """The panel as a widget: header coloured by status, a button for the next hint, evidence folded."""
        import ipywidgets

        self._hints_html = ipywidgets.HTML(self._header_html(self._shown_hints_html()))
        children: list[ipywidgets.Widget] = [self._hints_html]
        if self.more_hints:
            self._button = ipywidgets.Button(icon="lightbulb-o", layout=ipywidgets.Layout(width="auto"))
            self._button.add_class("labkit-next-hint")
            self._button.on_click(lambda _button: self.reveal())
            self._label_button()
            children.append(self._button)
        if self.result.evidence:
            evidence = ipywidgets.Accordion(children=[ipywidgets.HTML(self._evidence_html())], titles=("Evidence",))
            evidence.selected_index = None
            children.append(evidence)
        return ipywidgets.VBox(children)

    def _label_button(self) -> None:
        if self._button is None:
            return
        if self.more_hints:
            self._button.description = f"Stuck? Show hint {self.shown + 1} of {len(self.result.hints)}"
        else:
            self._button.layout.display = "none"

    def _refresh_widget(self) -> None:
        if self._hints_html is not None:
            self._hints_html.value = self._header_html(self._shown_hints_html())
        self._label_button()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": str(self), "text/html": self._repr_html_()}
        if in_kernel():
            bundle[WIDGET_MIMETYPE] = self.widget()._repr_mimebundle_()[WIDGET_MIMETYPE]
        return bundle


@dataclass(frozen=True)
class HintView:
    """One hint of a check's ladder, as `labkit.hint` shows it."""

    check_id: str
    level: int
    count: int
    text: str

    def __str__(self) -> str:
        if self.level == 0:
            return f"{self.check_id}: {self.text}"
        last = " (the last one: following it literally fixes the problem)" if self.level == self.count else ""
        return f"{self.check_id} hint {self.level} of {self.count}{last}: {self.text}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        if self.level == 0:
            return f"<div>{html.escape(self.check_id)}: {rich_text(self.text)}</div>"
        return (
            f'<div style="border-left:6px solid #5f6b7a;padding:4px 10px"><i>{html.escape(self.check_id)} hint '
            f"{self.level} of {self.count}:</i> {rich_text(self.text)}</div>"
        )


def check(check_id: str, *, connection: Context | None = None) -> CheckPanel:
    """Run one check ("00.2") against the cluster and show its verdict.

    In a notebook, a live line under the cell says what the check waits for, and until when.
    """
    if not CHECK_ID_PATTERN.match(check_id):
        raise ValueError(f"labkit.check takes one check id like '00.2', not {check_id!r}")
    (one,) = select_checks(check_id)
    try:
        ctx = open_context(lambda: resolve(connection))
    except EnvironmentUnavailable as problem:
        panel = CheckPanel(unreachable(one, problem))
    else:
        live = LiveProgress(f"{one.check_id} {one.title}") if in_kernel() else nullcontext(None)
        with live as shown:
            result = run_check(one, ctx, progress=shown, on_wait=shown.refresh if shown else None)
        panel = CheckPanel(result)
    _SHOWN[check_id] = panel
    return panel


def hint(check_id: str, *, connection: Context | None = None) -> HintView:
    """The next hint for a check, climbing from where to look to the literal fix.

    It climbs the ladder of the verdict the notebook last showed for `check_id` (running the check
    first if it has not run); the panel's button climbs the same ladder.
    """
    panel = _SHOWN.get(check_id)
    if panel is None:
        panel = check(check_id, connection=connection)
    result = panel.result
    count = len(result.hints)
    if result.ok:
        return HintView(check_id, 0, count, "it passes: nothing to fix.")
    if not count:
        return HintView(check_id, 0, count, "this verdict has no hint.")
    revealed = panel.reveal()
    if revealed is None:
        return HintView(check_id, count, count, result.hints[-1])
    return HintView(check_id, panel.shown, count, revealed)
