"""The ranking-module host: install, activate and uninstall ranking strategies in a running service.

A module is Python source defining ``rank(books)``; see ``bookstore/modules/README.md`` for the
contract. A module installed from source runs in the service's module process
(:mod:`bookstore.modules.sandbox`), never on the event loop and never for long: the host loads it
there and ranks a sample shelf with it before accepting it, so a module that does not load in time,
has no ``rank`` or ranks wrongly is refused with :class:`~bookstore.errors.ModuleRejected` and never
becomes active. A module that fails, hangs or exits on live data later costs that request its
ranking (catalogue order, ``ranking.error`` says why), never the service. Bundled modules are the
bookstore's own code and run in the service itself, so a service that only ranks with them starts
no module process.

Several versions of a module may be installed side by side. Activation replaces one reference, so
every request ranks with either the old or the new module, never a mixture. What is installed and
which module is active are kept in a file beside the service's data (``BOOKSTORE_DATA_DIR``), so a
restarted pod comes back with the modules it had.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path

from bookstore.catalog import CATALOG, INITIAL_STOCK
from bookstore.errors import InvalidRequest, ModuleActive, ModuleExists, ModuleNotInstalled, ModuleRejected
from bookstore.models import Book, Ranking
from bookstore.modules import _loader
from bookstore.modules.sandbox import ModuleSandbox, SandboxError

__all__ = [
    "BUNDLED_MODULES",
    "BUNDLED_VERSION",
    "MODULE_NAME_PATTERN",
    "MODULE_VERSION_PATTERN",
    "LoadedModule",
    "ModuleHost",
    "RankingModule",
    "bundled_source",
    "load_module",
]

MODULE_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
MODULE_VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}$"
BUNDLED_VERSION = "1.0.0"
BUNDLED_MODULES = ("by-price", "by-sales", "by-stock")

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
    """One installed version of a ranking module (its code lives in the module process)."""

    name: str
    version: str
    origin: str
    description: str
    installed_at: float
    source: str = field(repr=False, compare=False)

    @property
    def reference(self) -> str:
        """``name@version``, how the module is shown to people and checkers."""
        return f"{self.name}@{self.version}"


def _ranked_ids(ids: Sequence[str | None], expected_ids: list[str], reference: str) -> list[str]:
    """The ids a module ranked, checked to be exactly the books it was given, each once."""
    if sorted(map(str, ids)) != sorted(expected_ids):
        raise ModuleRejected(
            f"{reference}: rank() must return the same books it was given, each once (got ids {list(ids)[:10]})",
            module=reference,
        )
    return [str(book_id) for book_id in ids]


def _in_order(books: Sequence[Book], ids: list[str]) -> list[Book]:
    by_id = {book.id: book for book in books}
    return [by_id[book_id] for book_id in ids]


@dataclass(frozen=True)
class LoadedModule:
    """A module loaded into *this* process: only for code trusted like the bookstore's own (bundled modules)."""

    module: RankingModule
    rank_function: _loader.RankFunction = field(repr=False)

    def rank(self, books: Sequence[Book]) -> list[Book]:
        """The books as this module orders them; raises :class:`ModuleRejected` if it breaks the contract."""
        reference = self.module.reference
        try:
            ids = _loader.call_rank(reference, self.rank_function, [book.model_dump() for book in books])
        except _loader.RankError as exc:
            raise ModuleRejected(str(exc), module=reference) from None
        return _in_order(books, _ranked_ids(ids, [book.id for book in books], reference))


def load_module(name: str, version: str, source: str, origin: str) -> LoadedModule:
    """Load a module into this process and rank the sample shelf with it (e.g. to know a bundled ranking's order).

    Services never do this with code they are sent: :class:`ModuleHost` runs that in its module process.
    """
    reference = f"{name}@{version}"
    try:
        rank_function, description = _loader.load(reference, source)
    except _loader.LoadError as exc:
        raise ModuleRejected(str(exc), module=reference) from None
    loaded = LoadedModule(RankingModule(name, version, origin, description, time.time(), source), rank_function)
    loaded.rank(_SAMPLE_SHELF)
    return loaded


@dataclass(frozen=True)
class _SavedState:
    """What the state file holds: the installed modules (with their sources) and the active one."""

    active: str | None
    modules: list[RankingModule]

    @classmethod
    def read(cls, path: Path) -> _SavedState | None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            modules = [RankingModule(**entry) for entry in raw["modules"]]
            active = raw.get("active")
            return cls(active if isinstance(active, str) else None, modules)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            _log.warning("ignoring the unreadable module state %s (%s); starting from BOOKSTORE_RANKING", path, exc)
            return None

    def write(self, path: Path) -> None:
        """Replace the file atomically, so a crash leaves the old state or the new one, never half."""
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {"active": self.active, "modules": [asdict(module) for module in self.modules]}
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                json.dump(document, stream)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class ModuleHost:
    """The ranking modules installed in this service and the one that is active.

    ``await start(default)`` before use (it restores the state file, or installs and activates the
    bundled module ``default``) and ``await close()`` at shutdown. ``state_file`` None keeps
    nothing across restarts.
    """

    def __init__(self, *, state_file: Path | None = None, sandbox: ModuleSandbox | None = None) -> None:
        self.state_file = state_file
        self.sandbox = sandbox or ModuleSandbox()
        self._installed: dict[tuple[str, str], RankingModule] = {}
        self._in_process: dict[str, LoadedModule] = {}  # bundled modules, by reference
        self._active: RankingModule | None = None
        self._changes = asyncio.Lock()

    @property
    def active(self) -> RankingModule | None:
        return self._active

    def modules(self) -> list[RankingModule]:
        """Every installed module, by name then install time."""
        return sorted(self._installed.values(), key=lambda module: (module.name, module.installed_at))

    async def start(self, default: str) -> None:
        """Load the saved modules again (those that still load) and activate the saved one, else ``default``."""
        saved = _SavedState.read(self.state_file) if self.state_file else None
        async with self._changes:
            for module in saved.modules if saved else []:
                try:
                    self._installed[(module.name, module.version)] = await self._load(module)
                except ModuleRejected as exc:
                    _log.warning("not restoring ranking module %s: %s", module.reference, exc.message)
            wanted = saved.active if saved else None
            self._active = next((m for m in self._installed.values() if m.reference == wanted), None)
            if self._active is None:
                if wanted:
                    _log.warning("ranking module %s did not come back; activating %s", wanted, default)
                key = (default, BUNDLED_VERSION)
                if key not in self._installed:
                    self._installed[key] = await self._load(self._new(default, BUNDLED_VERSION, None, default))
                self._active = self._installed[key]
            self._save()
            active = self._active
        _log.info("ranking modules: %s; active %s", ", ".join(m.reference for m in self.modules()), active.reference)

    async def close(self) -> None:
        await self.sandbox.close()

    async def install(
        self, name: str, version: str, *, source: str | None = None, bundled: str | None = None
    ) -> RankingModule:
        """Load ``source`` (or the bundled module ``bundled``) as ``name@version``; it is not active yet.

        Installing the same code again under the same name and version changes nothing and returns the
        module (a notebook run twice); other code under an installed name@version is refused, since a
        version names one piece of code for good.
        """
        if not re.match(MODULE_NAME_PATTERN, name) or not re.match(MODULE_VERSION_PATTERN, version):
            raise InvalidRequest(f"invalid module name or version {name!r}@{version!r}", module=name)
        if (source is None) == (bundled is None):
            raise InvalidRequest("give either the module's source or the name of a bundled module", module=name)
        async with self._changes:
            wanted = self._new(name, version, source, bundled)
            existing = self._installed.get((name, version))
            if existing is not None:
                if (existing.origin, existing.source) == (wanted.origin, wanted.source):
                    return existing
                raise ModuleExists(
                    f"{name}@{version} is already installed with other code: install yours as a new version",
                    module=f"{name}@{version}",
                )
            module = await self._load(wanted)
            self._installed[(name, version)] = module
            self._save()
        _log.info("installed ranking module %s (%s)", module.reference, module.origin)
        return module

    def installed(self, name: str, version: str) -> RankingModule | None:
        """The module installed as ``name@version``, if any."""
        return self._installed.get((name, version))

    async def activate(self, name: str, version: str) -> RankingModule:
        """Make an installed module the one every following request ranks with."""
        async with self._changes:
            module = self._get(name, version)
            self._active = module
            self._save()
        _log.info("activated ranking module %s", module.reference)
        return module

    async def uninstall(self, name: str, version: str) -> RankingModule:
        """Remove an installed module; the active one must be replaced first."""
        async with self._changes:
            module = self._get(name, version)
            if module is self._active:
                raise ModuleActive(
                    f"{module.reference} is active; activate another module before uninstalling it",
                    module=module.reference,
                )
            del self._installed[(name, version)]
            self._save()
            if self._in_process.pop(module.reference, None) is None:
                await self.sandbox.unload(module.reference)
        _log.info("uninstalled ranking module %s", module.reference)
        return module

    async def rank(self, books: Sequence[Book]) -> tuple[list[Book], Ranking | None]:
        """The books ranked by the active module, or in catalogue order if there is none or it fails."""
        module = self._active  # read once: this request uses this module throughout
        if module is None:
            return list(books), None
        try:
            bundled = self._in_process.get(module.reference)
            if bundled is not None:
                ranked = bundled.rank(books)
            else:
                ids = await self.sandbox.rank(module.reference, [book.model_dump() for book in books])
                ranked = _in_order(books, _ranked_ids(ids, [book.id for book in books], module.reference))
        except (SandboxError, ModuleRejected) as exc:
            _log.warning("ranking failed, serving catalogue order: %s", exc.message)
            return list(books), Ranking(module=module.name, version=module.version, error=exc.message)
        return ranked, Ranking(module=module.name, version=module.version)

    def _new(self, name: str, version: str, source: str | None, bundled: str | None) -> RankingModule:
        if bundled is not None:
            source, origin = bundled_source(bundled), f"bundled:{bundled}"
        else:
            origin = "source"
        assert source is not None
        return RankingModule(name, version, origin, "", time.time(), source)

    async def _load(self, module: RankingModule) -> RankingModule:
        """Load a module and try it on the sample shelf; ModuleRejected if it fails.

        Bundled modules (their source unchanged) load into this process; any other code into the module process.
        """
        reference = module.reference
        bundled = module.origin.removeprefix("bundled:")
        if module.origin.startswith("bundled:") and module.source == bundled_source(bundled):
            loaded = load_module(module.name, module.version, module.source, module.origin)
            self._in_process[reference] = loaded
            return replace(module, description=loaded.module.description)
        try:
            description = await self.sandbox.load(reference, module.source)
            ids = await self.sandbox.rank(reference, [book.model_dump() for book in _SAMPLE_SHELF])
            _ranked_ids(ids, [book.id for book in _SAMPLE_SHELF], reference)
        except (SandboxError, ModuleRejected) as exc:
            await self.sandbox.unload(reference)
            raise ModuleRejected(exc.message, module=reference) from None
        return replace(module, description=description)

    def _save(self) -> None:
        if self.state_file is not None:
            active = self._active.reference if self._active else None
            _SavedState(active, self.modules()).write(self.state_file)

    def _get(self, name: str, version: str) -> RankingModule:
        module = self._installed.get((name, version))
        if module is None:
            raise ModuleNotInstalled(f"{name}@{version} is not installed", module=f"{name}@{version}")
        return module
