"""The ranking-module host: install, activate and uninstall ranking strategies in a running process.

A module is Python source defining ``rank(books)``; see ``bookstore/modules/README.md`` for the
contract. The host compiles it, loads it into a fresh module object and ranks a sample shelf with
it before accepting it, so a module that does not load, has no ``rank`` or ranks wrongly is refused
with :class:`~bookstore.errors.ModuleRejected` and never becomes active.

Several versions of a module may be installed side by side. Activation replaces one reference,
so every request ranks with either the old or the new module, never a mixture.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from bookstore.catalog import CATALOG, INITIAL_STOCK
from bookstore.errors import InvalidRequest, ModuleActive, ModuleExists, ModuleNotInstalled, ModuleRejected
from bookstore.models import Book, Ranking

__all__ = [
    "BUNDLED_MODULES",
    "BUNDLED_VERSION",
    "MODULE_NAME_PATTERN",
    "MODULE_VERSION_PATTERN",
    "ModuleHost",
    "RankingModule",
    "bundled_source",
    "load_module",
]

MODULE_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
MODULE_VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}$"
BUNDLED_VERSION = "1.0.0"
BUNDLED_MODULES = ("by-price", "by-sales", "by-stock")

RankFunction = Callable[[list[dict[str, Any]]], Any]

_log = logging.getLogger("bookstore.modules")

# A shelf where every ranking worth having orders the books differently from catalogue order.
_SAMPLE_SHELF = tuple(
    Book(id=book.id, title=book.title, price=book.price, stock=INITIAL_STOCK - sold, sold=sold)
    for book, sold in zip(CATALOG, (3, 41, 7, 0, 19), strict=True)
)


def bundled_source(name: str) -> str:
    """The source of a module shipped with the bookstore, e.g. ``by-price``."""
    if name not in BUNDLED_MODULES:
        raise ModuleNotInstalled(
            f"there is no bundled module {name!r}; bundled modules: {', '.join(BUNDLED_MODULES)}", bundled=name
        )
    filename = name.replace("-", "_") + ".py"
    return resources.files("bookstore.modules.bundled").joinpath(filename).read_text(encoding="utf-8")


@dataclass(frozen=True)
class RankingModule:
    """One installed version of a ranking module."""

    name: str
    version: str
    origin: str
    description: str
    installed_at: float
    rank_function: RankFunction = field(repr=False, compare=False)

    @property
    def reference(self) -> str:
        """``name@version``, how the module is shown to people and checkers."""
        return f"{self.name}@{self.version}"

    def rank(self, books: Sequence[Book]) -> list[Book]:
        """The books as this module orders them; raises :class:`ModuleRejected` if it breaks the contract."""
        by_id = {book.id: book for book in books}
        # Fresh dicts on every call: a module may reorder or even mutate them without touching our state.
        offered = [book.model_dump() for book in books]
        try:
            ranked = self.rank_function(offered)
        except Exception as exc:
            raise ModuleRejected(
                f"{self.reference}: rank() raised {_describe(exc, self._filename)}", module=self.reference
            ) from exc
        return [by_id[book_id] for book_id in _ranked_ids(ranked, list(by_id), self.reference)]

    @property
    def _filename(self) -> str:
        return _filename(self.name, self.version)


def _filename(name: str, version: str) -> str:
    return f"<ranking module {name}@{version}>"


def _ranked_ids(ranked: object, expected_ids: list[str], reference: str) -> list[str]:
    """The ids in a module's answer, checked to be exactly the books it was given, each once."""
    if not isinstance(ranked, list | tuple):
        raise ModuleRejected(
            f"{reference}: rank() must return a list of the books it was given, not {type(ranked).__name__}",
            module=reference,
        )
    ids = [book.get("id") if isinstance(book, dict) else None for book in ranked]
    if sorted(map(str, ids)) != sorted(expected_ids):
        raise ModuleRejected(
            f"{reference}: rank() must return the same books it was given, each once (got ids {ids[:10]})",
            module=reference,
        )
    return [str(book_id) for book_id in ids]


def _describe(exc: BaseException, filename: str) -> str:
    """``ZeroDivisionError: division by zero (line 4)``: what went wrong and where in the module."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == filename]
    where = f" (line {lines[-1]})" if lines else ""
    return f"{type(exc).__name__}: {exc}{where}"


def load_module(name: str, version: str, source: str, origin: str) -> RankingModule:
    """Compile and load a module, then rank the sample shelf with it; refuse it if anything fails."""
    reference = f"{name}@{version}"
    filename = _filename(name, version)
    try:
        code = compile(source, filename, "exec")
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" at line {line}" if line else ""
        raise ModuleRejected(f"{reference} does not compile{where}: {exc}", module=reference) from exc
    namespace = types.ModuleType(f"bookstore_ranking_{name.replace('-', '_')}")
    try:
        exec(code, namespace.__dict__)
    # A module is someone else's code: whatever it raises while loading (even sys.exit) is a refusal.
    except (Exception, SystemExit) as exc:
        raise ModuleRejected(f"{reference} raised while loading: {_describe(exc, filename)}", module=reference) from exc
    rank_function = getattr(namespace, "rank", None)
    if not callable(rank_function):
        raise ModuleRejected(f"{reference} must define a function rank(books)", module=reference)
    module = RankingModule(
        name=name,
        version=version,
        origin=origin,
        description=next(iter((namespace.__doc__ or "").strip().splitlines()), ""),
        installed_at=time.time(),
        rank_function=rank_function,
    )
    module.rank(_SAMPLE_SHELF)
    return module


class ModuleHost:
    """The ranking modules installed in this process and the one that is active."""

    def __init__(self) -> None:
        self._installed: dict[tuple[str, str], RankingModule] = {}
        self._active: RankingModule | None = None
        self._lock = threading.Lock()

    @property
    def active(self) -> RankingModule | None:
        return self._active

    def modules(self) -> list[RankingModule]:
        """Every installed module, by name then install time."""
        with self._lock:
            return sorted(self._installed.values(), key=lambda module: (module.name, module.installed_at))

    def install(
        self, name: str, version: str, *, source: str | None = None, bundled: str | None = None
    ) -> RankingModule:
        """Load ``source`` (or the bundled module ``bundled``) as ``name@version``; it is not active yet."""
        if not re.match(MODULE_NAME_PATTERN, name) or not re.match(MODULE_VERSION_PATTERN, version):
            raise InvalidRequest(f"invalid module name or version {name!r}@{version!r}", module=name)
        if (name, version) in self._installed:
            raise ModuleExists(f"{name}@{version} is already installed", module=f"{name}@{version}")
        if source is not None and bundled is None:
            origin = "source"
        elif bundled is not None and source is None:
            source, origin = bundled_source(bundled), f"bundled:{bundled}"
        else:
            raise InvalidRequest("give either the module's source or the name of a bundled module", module=name)
        module = load_module(name, version, source, origin)
        with self._lock:
            if (name, version) in self._installed:
                raise ModuleExists(f"{name}@{version} is already installed", module=module.reference)
            self._installed[(name, version)] = module
        _log.info("installed ranking module %s (%s)", module.reference, origin)
        return module

    def activate(self, name: str, version: str) -> RankingModule:
        """Make an installed module the one every following request ranks with."""
        with self._lock:
            module = self._get(name, version)
            self._active = module
        _log.info("activated ranking module %s", module.reference)
        return module

    def uninstall(self, name: str, version: str) -> RankingModule:
        """Remove an installed module; the active one must be replaced first."""
        with self._lock:
            module = self._get(name, version)
            if module is self._active:
                raise ModuleActive(
                    f"{module.reference} is active; activate another module before uninstalling it",
                    module=module.reference,
                )
            del self._installed[(name, version)]
        _log.info("uninstalled ranking module %s", module.reference)
        return module

    def rank(self, books: Sequence[Book]) -> tuple[list[Book], Ranking | None]:
        """The books ranked by the active module, or in catalogue order if there is none or it fails."""
        module = self._active  # read once: this request uses this module throughout
        if module is None:
            return list(books), None
        try:
            ranked = module.rank(books)
        except ModuleRejected as exc:
            _log.warning("ranking failed, serving catalogue order: %s", exc.message)
            return list(books), Ranking(module=module.name, version=module.version, error=exc.message)
        return ranked, Ranking(module=module.name, version=module.version)

    def _get(self, name: str, version: str) -> RankingModule:
        module = self._installed.get((name, version))
        if module is None:
            raise ModuleNotInstalled(f"{name}@{version} is not installed", module=f"{name}@{version}")
        return module
