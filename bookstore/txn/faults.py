"""Faults on purpose, at named points of a purchase, so lab 03 can show what breaks and what recovers.

A request asks for faults with a header (honoured only when ``BOOKSTORE_LAB_MODE`` is on; without it
the header is refused with a 422, never silently ignored)::

    x-bookstore-fault: storefront.after-try=crash, stock.confirm=fail-after

Each entry names a :class:`FaultPoint` and a :class:`FaultAction`. The header travels with the
purchase: the storefront forwards it on its calls (tracing's propagated headers) and the coordinator
keeps it with the global transaction, sending it with the *first* delivery of each confirm or cancel
only, so a retry gets through and a crash does not repeat after a restart.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from bookstore.errors import InjectedFault, InvalidRequest

__all__ = [
    "CRASH_EXIT_CODE",
    "FAULT_HEADER",
    "FaultAction",
    "FaultInjectionMiddleware",
    "FaultPlan",
    "FaultPoint",
    "after",
    "before",
    "current_plan",
    "using",
]

FAULT_HEADER = "x-bookstore-fault"
#: The exit code of a process that crashed on purpose (EX_SOFTWARE), as its pod's lastState shows it.
CRASH_EXIT_CODE = 70

_log = logging.getLogger("bookstore.faults")


class FaultPoint(enum.StrEnum):
    """Where in a purchase a fault can strike."""

    #: Lab 02's purchase (no coordinator): the money is taken, the order not yet placed.
    STOREFRONT_AFTER_PAYMENT = "storefront.after-payment"
    #: A global transaction: both tries succeeded, the storefront has not asked for the commit yet.
    STOREFRONT_AFTER_TRY = "storefront.after-try"
    #: The coordinator logged its decision and has not yet told any branch.
    TC_BEFORE_PHASE_TWO = "tc.before-phase-two"
    STOCK_TRY = "stock.try"
    STOCK_CONFIRM = "stock.confirm"
    STOCK_CANCEL = "stock.cancel"
    BALANCE_TRY = "balance.try"
    BALANCE_CONFIRM = "balance.confirm"
    BALANCE_CANCEL = "balance.cancel"


class FaultAction(enum.StrEnum):
    """What happens at the point."""

    #: Answer 500 before doing the step's work.
    FAIL = "fail"
    #: Do the step's work and commit it, then answer 500: the caller never learns it succeeded.
    FAIL_AFTER = "fail-after"
    #: The process exits at once, mid-request (its pod restarts it).
    CRASH = "crash"


@dataclass(frozen=True)
class FaultPlan:
    """The faults one request asked for, by point."""

    faults: Mapping[FaultPoint, FaultAction] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", MappingProxyType(dict(self.faults)))

    @classmethod
    def parse(cls, header: str) -> FaultPlan:
        """Read ``point=action, ...``; anything else is an :class:`InvalidRequest` naming the choices."""
        faults: dict[FaultPoint, FaultAction] = {}
        for entry in filter(None, (part.strip() for part in header.split(","))):
            point, equals, action = (text.strip() for text in entry.partition("="))
            try:
                faults[FaultPoint(point)] = FaultAction(action if equals else FaultAction.FAIL)
            except ValueError:
                raise InvalidRequest(
                    f"{FAULT_HEADER}: {entry!r} is not point=action; points: {', '.join(FaultPoint)}; "
                    f"actions: {', '.join(FaultAction)}",
                    header=FAULT_HEADER,
                ) from None
        return cls(faults)

    @property
    def header(self) -> str:
        """The plan as a header value (empty when it asks for nothing)."""
        return ", ".join(f"{point}={action}" for point, action in self.faults.items())

    def __bool__(self) -> bool:
        return bool(self.faults)


_NO_FAULTS = FaultPlan()
_current: ContextVar[FaultPlan] = ContextVar("bookstore_faults", default=_NO_FAULTS)


def current_plan() -> FaultPlan:
    """The faults the request being served asked for."""
    return _current.get()


@contextmanager
def using(plan: FaultPlan) -> Iterator[None]:
    """Make ``plan`` current (the coordinator's phase two runs outside the request that asked for it)."""
    token = _current.set(plan)
    try:
        yield
    finally:
        _current.reset(token)


def before(point: FaultPoint) -> None:
    """Strike a ``fail`` or ``crash`` asked for at ``point``, before its work."""
    action = _current.get().faults.get(point)
    if action is FaultAction.CRASH:
        _log.critical("crashing on purpose at %s (%s)", point, FAULT_HEADER)
        os._exit(CRASH_EXIT_CODE)
    if action is FaultAction.FAIL:
        raise InjectedFault(f"failing on purpose at {point}, before its work", point=point)


def after(point: FaultPoint) -> None:
    """Strike a ``fail-after`` asked for at ``point``, once its work is committed."""
    if _current.get().faults.get(point) is FaultAction.FAIL_AFTER:
        raise InjectedFault(f"failing on purpose at {point}, after its work was committed", point=point)


class FaultInjectionMiddleware:
    """Reads ``x-bookstore-fault`` into the request's fault plan; refuses it (422) outside lab mode."""

    def __init__(self, app: ASGIApp, *, enabled: bool) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = Headers(scope=scope).get(FAULT_HEADER) if scope["type"] == "http" else None
        if header is None:
            # A request without the header asks for no fault, whatever the caller's context held.
            with using(_NO_FAULTS):
                await self.app(scope, receive, send)
            return
        try:
            if not self.enabled:
                raise InvalidRequest(
                    f"{FAULT_HEADER} is honoured only in lab mode (BOOKSTORE_LAB_MODE=true)", header=FAULT_HEADER
                )
            plan = FaultPlan.parse(header)
        except InvalidRequest as refusal:
            await JSONResponse(refusal.to_payload(), status_code=refusal.status_code)(scope, receive, send)
            return
        with using(plan):
            await self.app(scope, receive, send)
