"""Why a workload or a Service is not ready, as `kubectl describe` shows it, and whether waiting can help.

This is the rule every lab's checks follow (labs 00-02 do; labs 03-05 should):

* A check **fails at once** when the state cannot become right by waiting: a missing object (the
  Deployment, a claim, a ConfigMap or Secret, a key), an image that cannot be pulled, a container
  that exits (crash loop, with its exit code and last log lines), a readiness probe that keeps
  failing (with the probe's own answer), a Service without selector, a selector that matches no
  pod, a port the Service does not expose, a target port nothing listens on.
* It **waits only while progress is possible** (a pod being created, a probe not yet passed, the
  endpoints catching up), within its time budget, and the attendee sees what it waits for, live.
* Its FAILED message names the cause in `kubectl describe`'s words; its hints go from where to
  look (a kubectl command) to the literal fix. Fixes are computed from the lab's own manifests
  (infra/base/) where possible, so that following them repairs the state.

In a check::

    from checkers.diagnosis import await_service, await_workload

    @check("03.1", title="The coordinator runs and answers through its Service", timeout=90)
    def coordinator_ready(ctx: Context) -> CheckResult:
        workload = await_workload(ctx, "tc")               # Deployment tc: Ready, or why not
        if not workload.ready:
            return workload.failed()                       # FAILED: cause, where to look, the fix
        service = await_service(ctx, "tc", path="/health") # Service tc: selector, endpoints, port, answer
        if not service.ready:
            return service.failed()
        ...                                                # service.answer: what /health said

`diagnose_workload` and `diagnose_service` look once; `await_workload` and `await_service` look
again (bounded polling with back-off inside the check's time budget) until READY or STUCK. A lab
gives its own fix for a problem only it knows how to repair with `failed(fixes={Problem.CRASH_LOOP:
"..."})`, says how to make an object no manifest holds with `how_to_create("Secret", "name",
"...")`, and a fix-it challenge tells the symptom instead of the cause with `failed(symptom=...)`.
A lab whose overlay patches the base repairs its objects from that overlay: `failed(fixes=overlay_fixes(LAB_ID,
"tc"))`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from checkers._context import Context
from checkers._runner import observe
from checkers.diagnosis._model import Answer, Diagnosis, Outlook, Problem
from checkers.diagnosis._overlays import overlay_fix, overlay_fixes
from checkers.diagnosis._pods import (
    answer_of,
    diagnose_pod,
    diagnose_workload,
    how_to_create,
    missing_object,
    namespace_events,
    reapply_fix,
)
from checkers.diagnosis._services import diagnose_service

__all__ = [
    "Answer",
    "Diagnosis",
    "Outlook",
    "Problem",
    "answer_of",
    "await_service",
    "await_workload",
    "diagnose_pod",
    "diagnose_service",
    "diagnose_workload",
    "how_to_create",
    "missing_object",
    "namespace_events",
    "overlay_fix",
    "overlay_fixes",
    "reapply_fix",
]


def await_workload(ctx: Context, *names: str, timeout: float | None = None) -> Diagnosis:
    """Look at the named Deployments until each has a Ready pod, or one cannot get one by waiting.

    All are looked at together, so a stuck one is told at once even while another is still starting.
    Waits at most `timeout` seconds (default: what is left of the running check's budget). Returns the
    first that is stuck, else the first still progressing when time ran out (saying so), else a READY one.
    """
    looks = [lambda name=name: diagnose_workload(ctx, name) for name in names]
    return _await(looks, f"{_listed([f'Deployment {name}' for name in names])} to have a Ready pod", timeout)


def await_service(
    ctx: Context, *names: str, port: int = 80, path: str | None = None, timeout: float | None = None
) -> Diagnosis:
    """Look at the named Services until `http://name:port` reaches a Ready pod (and, with `path`, the app
    answers) for each, or one cannot by waiting; returns as `await_workload` does."""
    looks = [lambda name=name: diagnose_service(ctx, name, port=port, path=path) for name in names]
    suffix = ("" if port == 80 else f":{port}") + (path or "")
    return _await(looks, f"{_listed([f'http://{name}{suffix}' for name in names])} to answer", timeout)


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _await(looks: Sequence[Callable[[], Diagnosis]], what: str, timeout: float | None) -> Diagnosis:
    if not looks:
        raise ValueError("nothing to wait for: name at least one object")
    started = time.monotonic()

    def look_at_all() -> list[Diagnosis]:
        # Stop at the first stuck one: the rest need not be asked.
        seen: list[Diagnosis] = []
        for look in looks:
            seen.append(look())
            if seen[-1].outlook is Outlook.STUCK:
                break
        return seen

    seen = observe(
        look_at_all,
        lambda found: any(d.outlook is Outlook.STUCK for d in found) or all(d.ready for d in found),
        timeout=timeout,
        what=what,
        describe=lambda found: next((d.summary for d in found if not d.ready), ""),
    ).value
    worst = next((d for d in seen if d.outlook is Outlook.STUCK), None) or next((d for d in seen if not d.ready), None)
    if worst is None:
        return seen[-1]
    if worst.waiting_helps:
        return _gave_up(worst, time.monotonic() - started)
    return worst


def _gave_up(seen: Diagnosis, waited: float) -> Diagnosis:
    """A diagnosis still progressing when the time was up: told as such (the check fails, saying so)."""
    return seen.about(seen.subject, f"still not ready after {waited:.0f} s: {seen.summary}")
