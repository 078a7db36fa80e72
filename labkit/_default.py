"""The connection labkit helpers use when a notebook does not pass one."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checkers import Context


@cache
def default_connection() -> Context:
    """Connect once per kernel; a failed attempt is not cached, so the next call tries again."""
    from labkit.connection import connect

    return connect()


def resolve(connection: Context | None) -> Context:
    return default_connection() if connection is None else connection
