"""A check's verdict in a notebook: a coloured widget, with plain text for terminals and papermill."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from checkers import CHECK_ID_PATTERN, CheckResult, EnvironmentUnavailable, Status, open_context, run_check, unreachable
from checkers import select as select_checks
from labkit._default import resolve

if TYPE_CHECKING:
    import ipywidgets

    from checkers import Context

COLOURS = {Status.PASSED: "#1b873f", Status.FAILED: "#c62828", Status.ERROR: "#b26a00"}
ICONS = {Status.PASSED: "✔", Status.FAILED: "✘", Status.ERROR: "⚠"}
WIDGET_MIMETYPE = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class CheckPanel:
    """Shows a CheckResult: a widget in JupyterLab, HTML in static views, text everywhere else."""

    result: CheckResult

    def raise_for_status(self) -> None:
        """Raise unless PASSED: hidden test cells call this so nbgrader grades the step (and show nothing)."""
        self.result.raise_for_status()

    def __str__(self) -> str:
        result = self.result
        lines = [f"{ICONS[result.status]} {result.check_id} {result.status}: {result.title}", f"  {result.message}"]
        if result.hint:
            lines.append(f"  Hint: {result.hint}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _header_html(self) -> str:
        result = self.result
        hint = f"<div><i>Hint:</i> {html.escape(result.hint)}</div>" if result.hint else ""
        return (
            f'<div style="border-left:6px solid {COLOURS[result.status]};padding:4px 10px">'
            f'<div style="color:{COLOURS[result.status]};font-weight:bold">{ICONS[result.status]} '
            f"{html.escape(result.check_id)} {result.status}: {html.escape(result.title)}</div>"
            f"<div>{html.escape(result.message)}</div>{hint}</div>"
        )

    def _evidence_html(self) -> str:
        return f'<pre style="font-size:90%">{html.escape(self.result.evidence_text())}</pre>'

    def _repr_html_(self) -> str:
        if not self.result.evidence:
            return self._header_html()
        return f"{self._header_html()}<details><summary>Evidence</summary>{self._evidence_html()}</details>"

    def widget(self) -> ipywidgets.Widget:
        """The panel as a widget: header coloured by status, evidence folded in an Accordion."""
        import ipywidgets

        children: list[ipywidgets.Widget] = [ipywidgets.HTML(self._header_html())]
        if self.result.evidence:
            evidence = ipywidgets.Accordion(children=[ipywidgets.HTML(self._evidence_html())], titles=("Evidence",))
            evidence.selected_index = None
            children.append(evidence)
        return ipywidgets.VBox(children)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": str(self), "text/html": self._repr_html_()}
        if _in_kernel():
            bundle[WIDGET_MIMETYPE] = self.widget()._repr_mimebundle_()[WIDGET_MIMETYPE]
        return bundle


def _in_kernel() -> bool:
    """Widgets need a Jupyter kernel; IPython in a terminal gets text."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def check(check_id: str, *, connection: Context | None = None) -> CheckPanel:
    """Run one check ("00.2") against the cluster and show its verdict."""
    if not CHECK_ID_PATTERN.match(check_id):
        raise ValueError(f"labkit.check takes one check id like '00.2', not {check_id!r}")
    (one,) = select_checks(check_id)
    try:
        ctx = open_context(lambda: resolve(connection))
    except EnvironmentUnavailable as problem:
        return CheckPanel(unreachable(one, problem))
    return CheckPanel(run_check(one, ctx))
