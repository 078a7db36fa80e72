"""Loading a ranking module's source and calling its ``rank``: the part that runs someone else's code.

Standard library only, because it is what the module worker process imports (see ``worker.py``):
that process should start in milliseconds and hold nothing a module could break. Whatever a module
raises, ``BaseException`` included (``sys.exit()``, ``KeyboardInterrupt``), becomes a
:class:`LoadError` or :class:`RankError` whose message says what and on which line of the module.
"""

from __future__ import annotations

import traceback
import types
from collections.abc import Callable
from typing import Any

__all__ = ["LoadError", "RankError", "RankFunction", "call_rank", "describe", "filename", "load"]

RankFunction = Callable[[list[dict[str, Any]]], Any]


class LoadError(Exception):
    """The module does not compile, raised while loading, or has no ``rank``."""


class RankError(Exception):
    """``rank()`` raised, or returned something that is not a list of the books it was given."""


def filename(reference: str) -> str:
    """The name a module's code runs under, so tracebacks point into the module: ``<ranking module x@1>``."""
    return f"<ranking module {reference}>"


def describe(exc: BaseException, reference: str) -> str:
    """``ZeroDivisionError: division by zero (line 4)``: what went wrong and where in the module."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == filename(reference)]
    where = f" (line {lines[-1]})" if lines else ""
    return f"{type(exc).__name__}: {exc}{where}"


def load(reference: str, source: str) -> tuple[RankFunction, str]:
    """Compile and run a module's source; its ``rank`` and the first line of its docstring."""
    try:
        code = compile(source, filename(reference), "exec")
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" at line {line}" if line else ""
        raise LoadError(f"{reference} does not compile{where}: {exc}") from None
    namespace = types.ModuleType(f"bookstore_ranking_{reference.replace('-', '_').replace('@', '_')}")
    try:
        exec(code, namespace.__dict__)
    # A module is someone else's code: whatever it raises while loading (even sys.exit) is a refusal.
    except BaseException as exc:
        raise LoadError(f"{reference} raised while loading: {describe(exc, reference)}") from None
    rank_function = getattr(namespace, "rank", None)
    if not callable(rank_function):
        raise LoadError(f"{reference} must define a function rank(books)")
    description = next(iter((namespace.__doc__ or "").strip().splitlines()), "")
    return rank_function, description


def call_rank(reference: str, rank_function: RankFunction, books: list[dict[str, Any]]) -> list[str | None]:
    """The ids of the books in the order ``rank(books)`` returned them (None for anything not a book)."""
    try:
        ranked = rank_function(books)
    except BaseException as exc:
        raise RankError(f"{reference}: rank() raised {describe(exc, reference)}") from None
    if not isinstance(ranked, list | tuple):
        raise RankError(
            f"{reference}: rank() must return a list of the books it was given, not {type(ranked).__name__}"
        )
    # dict.get, not book.get: a dict subclass the module made could do anything in its own get().
    ids = [dict.get(book, "id") if isinstance(book, dict) else None for book in ranked]
    return [book_id if isinstance(book_id, str) else None for book_id in ids]
