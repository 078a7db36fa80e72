"""The coordinator's engine: phase two driven until every branch answered, timeouts, recovery on start.

One watcher loop runs for the life of ``tc``: every ``scan_interval`` it rolls back the transactions
past their deadline and makes sure each decided, unfinished transaction has a driver, so the first
pass after a start is the recovery. A driver tells each pending branch (confirm or cancel), and
retries the ones it could not reach with exponential back-off (``first_delay`` doubling up to
``max_delay``) until all have answered. Participants make repeated deliveries harmless (the fence),
so retrying is always safe.

A driver starts ``start_delay`` after the decision (10 ms): the decided purchase's answer is then on
its way back through the storefront and the client, processes of the same machine that the
confirms would otherwise compete with for its cores. Phase two is asynchronous anyway (the decision
is logged, the outcome fixed), as Seata's TC commits AT branches in a background worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx
from anyio import to_thread

from bookstore.errors import BranchConflict
from bookstore.tracing import outgoing_headers
from bookstore.transport import ServiceHttp
from bookstore.txn.faults import FAULT_HEADER
from bookstore.txn.log import Delivery, DeliveryOutcome, PendingBranch, PhaseTwo, TransactionLog

__all__ = ["Coordinator"]

_log = logging.getLogger("bookstore.tc")


class Coordinator:
    """Drives phase two of every decided transaction of ``log`` over ``http``."""

    def __init__(
        self,
        log: TransactionLog,
        http: ServiceHttp,
        *,
        scan_interval: float = 0.5,
        start_delay: float = 0.01,
        first_delay: float = 0.05,
        max_delay: float = 2.0,
    ) -> None:
        self.log = log
        self.http = http
        self.scan_interval = scan_interval
        self.start_delay = start_delay
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start watching: the first pass recovers what a previous ``tc`` left unfinished."""
        self._watcher = asyncio.create_task(self._watch(), name="tc-watcher")

    async def stop(self) -> None:
        tasks = [task for task in (self._watcher, *self._drivers.values()) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def drive(self, xid: str) -> asyncio.Task[None]:
        """The task driving ``xid``'s phase two, started if none runs."""
        task = self._drivers.get(xid)
        if task is None or task.done():
            task = asyncio.create_task(self._drive(xid), name=f"phase-two-{xid}")
            self._drivers[xid] = task
            task.add_done_callback(lambda done: self._forget(xid, done))
        return task

    def _forget(self, xid: str, task: asyncio.Task[None]) -> None:
        if self._drivers.get(xid) is task:
            del self._drivers[xid]
        if not task.cancelled() and task.exception() is not None:
            _log.error("phase two of %s stopped: %r (the watcher starts it again)", xid, task.exception())

    async def _watch(self) -> None:
        while True:
            try:
                for xid in await to_thread.run_sync(self.log.time_out_expired):
                    _log.warning("global transaction %s timed out: rolling back", xid)
                for xid in await to_thread.run_sync(self.log.unfinished):
                    self.drive(xid)
            except Exception:  # the watcher must outlive a failing disk or a bug in one pass
                _log.exception("the coordinator's watcher failed a pass")
            await asyncio.sleep(self.scan_interval)

    async def _drive(self, xid: str) -> None:
        await asyncio.sleep(self.start_delay)
        delay = self.first_delay
        while (phase := await to_thread.run_sync(self.log.phase_two, xid)) is not None:
            if phase.branches:
                answers = await asyncio.gather(*(self._tell(phase, branch) for branch in phase.branches))
                if await to_thread.run_sync(self.log.record_deliveries, phase, answers):
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)

    async def _tell(self, phase: PhaseTwo, branch: PendingBranch) -> Delivery:
        """Deliver confirm or cancel to one branch once: what came of it, for the log."""
        verb = "confirm" if phase.commits else "cancel"
        headers = {name: value for name, value in outgoing_headers().items() if name != FAULT_HEADER}
        if phase.faults and branch.attempts == 0:
            # Faults strike the first delivery only, so the retry gets through and a crash does not repeat.
            headers[FAULT_HEADER] = phase.faults
        url = f"{branch.url}/txn/{branch.action}/{verb}"
        try:
            key = {"xid": branch.xid, "branch_id": branch.branch_id}
            answer = await self.http.request("POST", url, json=key, headers=headers)
        except httpx.HTTPError as exc:
            return Delivery(branch, DeliveryOutcome.RETRY, f"{verb} at {url}: {type(exc).__name__} {exc}")
        body = _json(answer)
        if answer.status_code == 200:
            return Delivery(branch, DeliveryOutcome.ANSWERED, f"{verb}: {body.get('fence')} ({body.get('outcome')})")
        error = f"{verb} at {url}: {answer.status_code} {body.get('error', '')} {body.get('message', '')}".strip()
        if body.get("error") == BranchConflict.code:
            return Delivery(branch, DeliveryOutcome.REFUSED, error)
        return Delivery(branch, DeliveryOutcome.RETRY, error)


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
