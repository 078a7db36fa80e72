"""Bounded polling with back-off: the one way labkit and the checkers wait for eventual state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import tenacity

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


def poll(probe: Callable[[], T], until: Callable[[T], object], *, timeout: float) -> Observation[T]:
    """Call `probe` until `until(value)` is true or `timeout` seconds have passed.

    Exceptions from `probe` are not retried: an unreachable API should surface at once, not after
    the whole timeout. A probe that expects "not there yet" answers (404) should return None.
    """
    retrying = tenacity.Retrying(
        stop=tenacity.stop_before_delay(timeout),
        wait=tenacity.wait_exponential(multiplier=FIRST_INTERVAL, min=FIRST_INTERVAL, max=MAX_INTERVAL),
        retry=tenacity.retry_if_result(lambda value: not until(value)),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    value = retrying(probe)
    return Observation(value=value, reached=bool(until(value)))


def wait_for(predicate: Callable[[], T], *, what: str, timeout: float = 60.0) -> T:
    """Wait until `predicate()` returns something truthy and return it.

    Raises WaitTimeout naming `what` (e.g. "pod hello to finish") when the time is up, so a
    notebook cell fails with a sentence instead of hanging.
    """
    seen = poll(predicate, bool, timeout=timeout)
    if not seen.reached:
        raise WaitTimeout(what, timeout, seen.value)
    return seen.value
