"""A live view of the namespace: Deployments, pods (phase, restarts) and Services, refreshed."""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit._default import resolve
from labkit._panel import WIDGET_MIMETYPE
from labkit._progress import in_kernel

if TYPE_CHECKING:
    import ipywidgets

    from checkers import Context

Row = tuple[str, ...]


@dataclass(frozen=True)
class Table:
    title: str
    columns: Row
    rows: list[Row] = field(default_factory=list)

    def text(self) -> str:
        widths = [max(len(cell) for cell in column) for column in zip(self.columns, *self.rows, strict=True)]
        lines = [f"{self.title}:" if self.rows else f"{self.title}: none"]
        if self.rows:
            lines += [
                "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in (self.columns, *self.rows)
            ]
        return "\n".join(lines)

    def html(self) -> str:
        # Each table a block of its own, so titles do not run into each other in JupyterLab.
        head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in self.rows)
        if not self.rows:
            return f"<div style='margin-top:6px'><b>{html.escape(self.title)}</b>: <i>none</i></div>"
        return f"<div style='margin-top:6px'><b>{html.escape(self.title)}</b><table><tr>{head}</tr>{body}</table></div>"


@dataclass(frozen=True)
class ClusterSnapshot:
    """What the namespace held at one moment, as tables."""

    namespace: str
    tables: list[Table]

    def text(self) -> str:
        return "\n".join([f"namespace {self.namespace}", *(table.text() for table in self.tables)])

    def html(self) -> str:
        tables = "".join(table.html() for table in self.tables)
        return f"<div><div><b>namespace {html.escape(self.namespace)}</b></div>{tables}</div>"


def snapshot(ctx: Context) -> ClusterSnapshot:
    """Read Deployments, pods and Services of the connection's namespace."""
    namespace = ctx.namespace
    deployments = Table("Deployments", ("NAME", "READY", "UP-TO-DATE", "AVAILABLE"))
    for item in ctx.apps.list_namespaced_deployment(namespace).items:
        status = item.status
        wanted = item.spec.replicas if item.spec and item.spec.replicas is not None else 1
        ready, updated, available = (
            (status.ready_replicas or 0, status.updated_replicas or 0, status.available_replicas or 0)
            if status
            else (0, 0, 0)
        )
        deployments.rows.append((_name(item), f"{ready}/{wanted}", str(updated), str(available)))
    pods = Table("Pods", ("NAME", "READY", "PHASE", "RESTARTS"))
    for pod in ctx.core.list_namespaced_pod(namespace).items:
        statuses = (pod.status.container_statuses or []) if pod.status else []
        ready_pods = f"{sum(1 for s in statuses if s.ready)}/{len(pod.spec.containers) if pod.spec else 0}"
        restarts = str(sum(s.restart_count or 0 for s in statuses))
        phase = (pod.status.phase if pod.status else None) or "Unknown"
        pods.rows.append((_name(pod), ready_pods, phase, restarts))
    services = Table("Services", ("NAME", "TYPE", "CLUSTER-IP", "PORTS"))
    for service in ctx.core.list_namespaced_service(namespace).items:
        spec = service.spec
        ports = ",".join(f"{p.port}/{p.protocol or 'TCP'}" for p in (spec.ports or [] if spec else []))
        kind = (spec.type if spec else None) or "ClusterIP"
        services.rows.append((_name(service), kind, (spec.cluster_ip if spec else None) or "", ports))
    return ClusterSnapshot(namespace, [deployments, pods, services])


def _name(obj: Any) -> str:
    return str(obj.metadata.name) if obj.metadata else ""


class ClusterView:
    """Keeps a widget showing the namespace up to date every `interval` seconds until `stop()`."""

    def __init__(self, ctx: Context, interval: float) -> None:
        self._ctx = ctx
        self._interval = interval
        self._stopped = threading.Event()
        self._widget: ipywidgets.HTML | None = None
        self._thread: threading.Thread | None = None

    def __str__(self) -> str:
        return self._render_text()

    def _render_text(self) -> str:
        from checkers import environment_problem

        try:
            return snapshot(self._ctx).text()
        except Exception as exc:  # the view must keep showing something while the cluster is away
            return f"cannot read the cluster: {environment_problem(exc) or exc}"

    def _render_html(self) -> str:
        from checkers import environment_problem

        try:
            return snapshot(self._ctx).html()
        except Exception as exc:  # same as above: say so in the view, try again at the next refresh
            return f"<i>cannot read the cluster: {html.escape(environment_problem(exc) or str(exc))}</i>"

    def _refresh_until_stopped(self) -> None:
        assert self._widget is not None
        while not self._stopped.wait(self._interval):
            self._widget.value = self._render_html()

    def widget(self) -> ipywidgets.HTML:
        """The widget; the first call starts the refreshing thread."""
        import ipywidgets

        if self._widget is None:
            self._widget = ipywidgets.HTML(self._render_html())
            self._thread = threading.Thread(target=self._refresh_until_stopped, name="cluster-view", daemon=True)
            self._thread.start()
        return self._widget

    def stop(self) -> None:
        """Stop refreshing (the widget keeps its last picture)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": self._render_text()}
        if in_kernel():
            bundle[WIDGET_MIMETYPE] = self.widget()._repr_mimebundle_()[WIDGET_MIMETYPE]
        return bundle


def cluster_view(*, connection: Context | None = None, interval: float = 3.0) -> ClusterView:
    """A live view of Deployments, pods and Services in your namespace (display it in a cell)."""
    return ClusterView(resolve(connection), interval)
