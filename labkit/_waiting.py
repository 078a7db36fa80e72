"""Bounded polling with back-off: the one way labkit and the checkers wait for eventual state.

Waiting is never silent: each look is reported (what is awaited, for how long so far, the deadline
and what was seen) to the reporter in effect, which a notebook shows as a live line under the cell
and `lab check` as a line on the terminal. Without one, `wait_for` in a Jupyter kernel shows its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Generic, TypeVar

import tenacity

from labkit._progress import LiveProgress, Progress, ProgressReporter, in_kernel

T = TypeVar("T")

#: First pause between two looks; it doubles up to MAX_INTERVAL so quick changes are seen quickly
#: and slow ones do not hammer the API.
FIRST_INTERVAL = 0.05
MAX_INTERVAL = 2.0


class WaitTimeout(TimeoutError):
    """What was awaited did not happen in time; `last` holds the last value seen."""

    def __init__(self, what: str, timeout: float, last: object) -> None:
        super().__init__(f"gave up after {timeout:g}s waiting for {what} (last seen: {last!r})")
        self.what = what
        self.timeout = timeout
        self.last = last


@dataclass(frozen=True)
class Observation(Generic[T]):
    """The last value a poll saw, and whether it met the condition before the deadline."""

    value: T
    reached: bool


_reporter: ContextVar[ProgressReporter | None] = ContextVar("labkit_progress_reporter", default=None)


@contextmanager
def reporting_progress(reporter: ProgressReporter | None) -> Iterator[None]:
    """Send every look of the polls inside the block to `reporter` (None: to nobody)."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


def poll(
    probe: Callable[[], T],
    until: Callable[[T], object],
    *,
    timeout: float,
    what: str = "",
    describe: Callable[[T], str] | None = None,
) -> Observation[T]:
    """Call `probe` until `until(value)` is true or `timeout` seconds have passed.

    Exceptions from `probe` are not retried: an unreachable API should surface at once, not after
    the whole timeout. A probe that expects "not there yet" answers (404) should return None.
    Each look that is not yet the awaited one is reported as `Progress` (when `what` names it),
    with `describe(value)` saying what was seen.
    """
    reporter = _reporter.get()
    started = time.time()

    def report(state: tenacity.RetryCallState) -> None:
        if reporter is None or not what or state.outcome is None or state.outcome.failed:
            return
        seen = describe(state.outcome.result()) if describe else ""
        reporter(Progress(what, started, state.seconds_since_start or 0.0, timeout, seen))

    retrying = tenacity.Retrying(
        stop=tenacity.stop_before_delay(timeout),
        wait=tenacity.wait_exponential(multiplier=FIRST_INTERVAL, min=FIRST_INTERVAL, max=MAX_INTERVAL),
        retry=tenacity.retry_if_result(lambda value: not until(value)),
        before_sleep=report,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    value = retrying(probe)
    return Observation(value=value, reached=bool(until(value)))


def wait_for(
    predicate: Callable[[], T], *, what: str, timeout: float = 60.0, describe: Callable[[T], str] | None = None
) -> T:
    """Wait until `predicate()` returns something truthy and return it.

    Raises WaitTimeout naming `what` (e.g. "pod hello to finish") when the time is up, so a
    notebook cell fails with a sentence instead of hanging. In a Jupyter kernel, a live line under
    the cell says what is awaited and until when, and goes away once it is there.
    """
    shown = _live_line_in_kernel() if _reporter.get() is None else nullcontext(None)
    with shown as live, reporting_progress(live or _reporter.get()):
        seen = poll(predicate, bool, timeout=timeout, what=what, describe=describe)
    if not seen.reached:
        raise WaitTimeout(what, timeout, seen.value)
    return seen.value


def _live_line_in_kernel() -> AbstractContextManager[ProgressReporter | None]:
    return LiveProgress() if in_kernel() else nullcontext(None)
