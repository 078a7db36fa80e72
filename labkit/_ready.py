"""`labkit.wait_until_ready("deployment/monolith")`: wait as `kubectl rollout status` does, but never in vain.

It waits while the Deployment's pod is on its way (or the Service's endpoints catch up) and stops at
once, saying why, when waiting cannot help: a missing claim, a crash loop, an image that cannot be
pulled, a selector that matches nothing (checkers.diagnosis). In a notebook a live line says what it
waits for and until when.
"""

from __future__ import annotations

import html
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit._default import resolve
from labkit._progress import LiveProgress, in_kernel
from labkit._waiting import reporting_progress

if TYPE_CHECKING:
    from checkers import Context

KINDS = {"deployment": "Deployment", "deployments": "Deployment", "service": "Service", "services": "Service"}


class NotReady(RuntimeError):
    """What was waited for is not ready, and says why (and where to look)."""


@dataclass(frozen=True)
class Ready:
    """What became ready, in one line each."""

    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join(f"✔ {line}" for line in self.lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return "".join(f'<div style="color:#1b873f">✔ {html.escape(line)}</div>' for line in self.lines)


def wait_until_ready(
    *targets: str, path: str = "/health", timeout: float = 120.0, connection: Context | None = None
) -> Ready:
    """Wait until each target (`deployment/NAME`, `service/NAME`) is ready; NotReady says why when it cannot be.

    A Deployment is ready with a Ready pod of its current template; a Service once `http://NAME{path}`
    answers through it. Raises NotReady at once when waiting cannot help, or after `timeout` seconds.
    """
    from checkers.diagnosis import await_service, await_workload

    by_kind: dict[str, list[str]] = {"Deployment": [], "Service": []}
    for target in targets:
        kind, _, name = target.partition("/")
        if kind.lower() not in KINDS or not name:
            raise ValueError(f"wait for `deployment/NAME` or `service/NAME`, not {target!r}")
        by_kind[KINDS[kind.lower()]].append(name)
    ctx = resolve(connection)
    shown = LiveProgress() if in_kernel() else nullcontext(None)
    lines: list[str] = []
    with shown as live, reporting_progress(live):
        for kind, names in by_kind.items():
            if not names:
                continue
            if kind == "Deployment":
                found = await_workload(ctx, *names, timeout=timeout)
            else:
                found = await_service(ctx, *names, path=path, timeout=timeout)
            if not found.ready:
                verdict = found.failed()
                raise NotReady(f"{verdict.message} {verdict.hint}".strip())
            lines += [f"{kind.lower()}/{name} is ready" for name in names]
    return Ready(tuple(lines))
