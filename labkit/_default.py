"""The connection labkit helpers use when a notebook does not pass one: the last `connect()`'s.

A notebook's `ctx = labkit.connect()` is what `labkit.check(...)`, `labkit.apply(...)` and the other
helpers then use, so a notebook that connects again (after `lab down && lab up`, say) is followed by
all of them. Without any `connect()` yet, the first helper connects.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checkers import Context

_lock = threading.Lock()
_current: Context | None = None


def use(connection: Context) -> None:
    """Make `connection` the default (`connect()` does this with each connection it makes)."""
    global _current
    with _lock:
        _current = connection


def forget(connection: Context | None = None) -> None:
    """Drop the default (only if it is `connection`, when one is given): the next helper connects again."""
    global _current
    with _lock:
        if connection is None or _current is connection:
            _current = None


def default_connection() -> Context:
    """The last `connect()`'s connection, or a new one; a failed attempt is not kept, so the next call tries again."""
    current = _current
    if current is not None:
        return current
    from labkit.connection import connect

    return connect()


def resolve(connection: Context | None) -> Context:
    return default_connection() if connection is None else connection
