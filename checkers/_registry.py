"""Checks registered by id, grouped into labs found by module name (checkers/labNN_slug.py)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType

from checkers._context import Context
from checkers._result import CheckResult

CheckFunction = Callable[[Context], CheckResult]
SolutionStep = Callable[[Context], None]

CHECK_ID_PATTERN = re.compile(r"^(?P<lab>\d\d)\.(?P<step>\d+)$")
LAB_MODULE = re.compile(r"^lab(?P<number>\d\d)_(?P<slug>[a-z0-9_]+)$")
DEFAULT_TIMEOUT = 30.0


class UnknownCheck(LookupError):
    """A lab or check id that no checkers module defines."""


@dataclass
class Check:
    """A registered check: what it looks at (`function`) and, once known, the step that satisfies it."""

    check_id: str
    title: str
    timeout: float
    function: CheckFunction
    solution_step: SolutionStep | None = field(default=None)

    @property
    def lab_number(self) -> str:
        return self.check_id.split(".")[0]

    @property
    def sort_key(self) -> tuple[int, int]:
        lab, step = self.check_id.split(".")
        return int(lab), int(step)

    def solution(self, step: SolutionStep) -> SolutionStep:
        """Register what the solution does for this step (decorator): `lab solve` and CI run it."""
        self.solution_step = step
        return step

    def __call__(self, ctx: Context) -> CheckResult:
        return self.function(ctx)


class Registry:
    """Checks by id. The package keeps one (`REGISTRY`); tests make their own."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def check(self, check_id: str, *, title: str, timeout: float = DEFAULT_TIMEOUT) -> Callable[[CheckFunction], Check]:
        """Register a check under `check_id` ("NN.k"); `timeout` bounds how long it may wait for the cluster."""
        if not CHECK_ID_PATTERN.match(check_id):
            raise ValueError(f"check id {check_id!r} is not of the form NN.k (e.g. 03.2)")
        if timeout <= 0:
            raise ValueError(f"check {check_id}: timeout must be positive, got {timeout}")

        def register(function: CheckFunction) -> Check:
            if check_id in self._checks:
                raise ValueError(f"check {check_id} is registered twice")
            registered = Check(check_id, title, timeout, function)
            self._checks[check_id] = registered
            return registered

        return register

    def of_lab(self, number: str) -> list[Check]:
        """The lab's checks in step order (00.2 before 00.10)."""
        return sorted((c for c in self._checks.values() if c.lab_number == number), key=lambda c: c.sort_key)


REGISTRY = Registry()
check = REGISTRY.check


@dataclass(frozen=True)
class Lab:
    """One lab: its number, its id ("00-setup") and the module holding its checks, solve and reset."""

    number: str
    lab_id: str
    module: ModuleType

    @property
    def checks(self) -> list[Check]:
        return REGISTRY.of_lab(self.number)


@cache
def labs() -> dict[str, Lab]:
    """Every lab module in this package, imported once, by lab number."""
    package = importlib.import_module("checkers")
    found: dict[str, Lab] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        match = LAB_MODULE.match(module_info.name)
        if match:
            number = match["number"]
            lab_id = f"{number}-{match['slug'].replace('_', '-')}"
            found[number] = Lab(number, lab_id, importlib.import_module(f"checkers.{module_info.name}"))
    return dict(sorted(found.items()))


def find_lab(selector: str) -> Lab:
    """The lab named by "NN" or "NN-slug"."""
    available = labs()
    number = selector.split("-")[0]
    lab = available.get(number)
    if lab is None or selector not in (lab.number, lab.lab_id):
        known = ", ".join(f"{lab.number} ({lab.lab_id})" for lab in available.values())
        raise UnknownCheck(f"no lab {selector!r}; the labs are: {known}")
    return lab


def select(selector: str) -> list[Check]:
    """The checks named by a lab ("00", "00-setup") or a single check id ("00.2"), in order."""
    selector = selector.strip()
    if CHECK_ID_PATTERN.match(selector):
        lab = find_lab(selector.split(".")[0])
        chosen = [c for c in lab.checks if c.check_id == selector]
        if not chosen:
            known = ", ".join(c.check_id for c in lab.checks)
            raise UnknownCheck(f"no check {selector!r}; lab {lab.lab_id} has: {known}")
        return chosen
    return find_lab(selector).checks
