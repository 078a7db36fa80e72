"""The connection labkit helpers use when a notebook does not pass one: the last `connect()`'s.

A notebook's `ctx = labkit.connect()` is what `labkit.check(...)`, `labkit.apply(...)` and the other
helpers then use, so a notebook that connects again (after `lab down && lab up`, say) is followed by
all of them. Without any `connect()` yet, the first helper connects. labkit.connection keeps which
connection that is (`make_default`, `forget_default`); this module only reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checkers import Context


def default_connection() -> Context:
    """The last `connect()`'s connection, or a new one; a failed attempt is not kept, so the next call tries again."""
    from labkit.connection import connect, last_connection

    current = last_connection()
    return current if current is not None else connect()


def resolve(connection: Context | None) -> Context:
    return default_connection() if connection is None else connection
