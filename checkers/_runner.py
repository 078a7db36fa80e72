"""Running checks: time budgets, and the line between the attendee's failures and the environment's."""

from __future__ import annotations

import contextvars
import re
import threading
import time
import traceback
from collections.abc import Callable
from typing import TypeVar

import httpx
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from checkers._context import Context
from checkers._evidence import record
from checkers._registry import DEFAULT_TIMEOUT, Check
from checkers._result import CheckResult
from labkit._progress import ProgressReporter
from labkit._waiting import Observation, poll, reporting_progress

T = TypeVar("T")
C = TypeVar("C", bound=Context)

#: How long `lab check` waits for the API to answer at all before saying it is down.
PREFLIGHT_TIMEOUT = 5.0
#: Extra time a check gets beyond its polling budget for its last API calls, before it is abandoned.
GRACE = 10.0
#: How often the caller of a running check is given the hand back (`on_wait`), e.g. to redraw progress.
WAIT_SLICE = 0.25

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("check_deadline", default=None)


class EnvironmentUnavailable(Exception):
    """The cluster cannot be reached at all; the message is one line meant for the attendee."""


def environment_problem(exc: BaseException) -> str | None:
    """A one-line description if `exc` means the environment failed (not the attendee), else None."""
    if isinstance(exc, ApiException):
        if not exc.status or exc.status >= 500:
            return f"the Kubernetes API answered {exc.status or 'nothing'} {exc.reason or ''}".rstrip()
        if exc.status in (401, 403):
            return f"the Kubernetes API refused our credentials ({exc.status} {exc.reason})"
        return None
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        # NewConnectionError starts with the connection ("HTTPConnection(host=.., port=..): Failed to
        # establish ..."), which the host and port below already say: keep only the reason.
        reason = re.sub(r"^(<[^>]*>|\w+\([^)]*\)): ", "", str(exc.reason)) if exc.reason else str(exc)
        return f"cannot reach the Kubernetes API at {exc.pool.host}:{exc.pool.port} ({reason})"
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return f"the connection to the Kubernetes API broke ({type(exc).__name__}: {exc})"
    if isinstance(exc, httpx.TransportError):
        where = exc.request.url if _has_request(exc) else "a service"
        return f"cannot reach {where} ({type(exc).__name__}: {exc})"
    if isinstance(exc, ConfigException):
        return f"no usable Kubernetes configuration ({exc})"
    if isinstance(exc, ConnectionError):
        return f"a connection failed ({exc})"
    return None


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - httpx raises RuntimeError when the error carries no request
    except RuntimeError:
        return False
    return True


def observe(
    probe: Callable[[], T],
    until: Callable[[T], object],
    *,
    timeout: float | None = None,
    what: str = "",
    describe: Callable[[T], str] | None = None,
) -> Observation[T]:
    """Poll `probe` until `until(value)` holds or the running check's time budget is spent.

    `until` must hold as soon as waiting cannot help any more (a missing object, a crash loop), not
    only on success: a check waits only while progress is possible. `what` names what is awaited
    and `describe(value)` what was seen, for the attendee's live progress line. Returns the last
    value seen either way, so the check can report what it saw.
    """
    if timeout is None:
        timeout = time_left()
    return poll(probe, until, timeout=timeout, what=what, describe=describe)


def time_left() -> float:
    """Seconds left of the running check's time budget (DEFAULT_TIMEOUT outside a check)."""
    deadline = _deadline.get()
    return DEFAULT_TIMEOUT if deadline is None else max(0.0, deadline - time.monotonic())


def _verdict(check: Check, ctx: Context, timeout: float, progress: ProgressReporter | None) -> CheckResult:
    """Run the check function, turning anything it raises into an ERROR that says why."""
    _deadline.set(time.monotonic() + timeout)
    try:
        with reporting_progress(progress):
            result = check.function(ctx)
    except Exception as exc:  # a check must never crash the run: its exception becomes an ERROR verdict
        problem = environment_problem(exc)
        evidence = {"exception": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        if problem:
            return CheckResult.error(
                f"The check could not look at the cluster: {problem}.",
                "This is not about your work: make sure the cluster is up (`lab up`) and run the check again.",
                **evidence,
            )
        return CheckResult.error(
            f"The check itself crashed ({type(exc).__name__}). This is not about your work.",
            "Run it again; if it keeps crashing, tell the workshop staff.",
            **evidence,
        )
    if not isinstance(result, CheckResult):
        return CheckResult.error(
            f"The check returned {type(result).__name__} instead of a verdict. This is not about your work.",
            "Tell the workshop staff.",
        )
    return result


def run_check(
    check: Check,
    ctx: Context,
    *,
    grace: float = GRACE,
    budget: float | None = None,
    progress: ProgressReporter | None = None,
    on_wait: Callable[[], None] | None = None,
) -> CheckResult:
    """Run one check within its timeout; a check still stuck after its budget and `grace` is an ERROR.

    `budget` shortens how long the check may wait for eventual state (a look rather than a wait,
    as class progress needs); it never lengthens the check's own timeout. `progress` receives each
    look the check takes while it waits (from the check's thread); `on_wait` is called from the
    caller's thread every WAIT_SLICE seconds until the verdict.
    """
    started = time.monotonic()
    timeout = check.timeout if budget is None else min(budget, check.timeout)
    outcome: list[CheckResult] = []
    # Each check gets its own context so its deadline does not leak; a daemon thread so a check stuck
    # in a network call cannot keep `lab check` from exiting.
    worker = threading.Thread(
        target=lambda: outcome.append(contextvars.Context().run(_verdict, check, ctx, timeout, progress)),
        name=f"check-{check.check_id}",
        daemon=True,
    )
    worker.start()
    give_up = started + timeout + grace
    while worker.is_alive() and time.monotonic() < give_up:
        worker.join(min(WAIT_SLICE, max(0.0, give_up - time.monotonic())))
        if on_wait is not None and worker.is_alive():
            on_wait()
    if outcome:
        result = outcome[0]
    else:
        result = CheckResult.error(
            f"The check did not finish within {timeout + grace:g}s: the cluster answers too slowly.",
            "This is not about your work: check that the cluster is healthy and try again.",
        )
    named = result.named(check.check_id, check.title, time.monotonic() - started)
    record(named)
    return named


def open_context(connect: Callable[[], C]) -> C:
    """Connect and make sure the API answers, so a down cluster is one clear line, not N errors."""
    try:
        ctx = connect()
        ctx.core.get_api_resources(_request_timeout=PREFLIGHT_TIMEOUT)
    except Exception as exc:  # any way connecting fails is the environment's, never the attendee's
        problem = environment_problem(exc) or f"{type(exc).__name__}: {exc}"
        raise EnvironmentUnavailable(f"Cannot reach the cluster: {problem}. Is it up? Try `lab up`.") from exc
    return ctx


def unreachable(check: Check, problem: EnvironmentUnavailable) -> CheckResult:
    """The verdict for a check that never ran because the cluster could not be reached."""
    return CheckResult.error(str(problem), "This is not about your work.").named(check.check_id, check.title, 0.0)
