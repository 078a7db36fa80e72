"""The ranking modules' own process: module code never runs on the service's event loop, nor for long.

A :class:`ModuleSandbox` starts ``python -m bookstore.modules.worker`` and sends it load and rank
requests (see :mod:`bookstore.modules.worker`), each with a time limit. When an answer is late the
worker is killed, whatever the module was doing (sleeping, spinning, waiting on the network), and the
call fails with :class:`SandboxError`; so it does when the worker dies (``os._exit``, a signal, out of
memory) or answers nonsense. The next call starts a fresh worker, which loads again, from their
sources, the modules the old one had. ``/health`` and every other route keep answering meanwhile:
they never wait for module code.

This is isolation for robustness, not security: the worker runs as the service's user, with its
files and network. Whoever may install a module may run code in the pod (see ``README.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from typing import Any

__all__ = ["LOAD_SECONDS", "RANK_SECONDS", "ModuleSandbox", "SandboxError"]

#: How long a module may take to load (run its top level) and rank the sample shelf, each.
LOAD_SECONDS = 5.0
#: How long one rank() of the live shelf may take before the request is served in catalogue order.
RANK_SECONDS = 1.0
#: Longest answer line read from the worker (a ranking of a very large shelf still fits).
_ANSWER_LIMIT_BYTES = 4 * 1024 * 1024
#: How long a worker asked to stop (its stdin closed) may take before it is killed.
_STOP_SECONDS = 1.0

_log = logging.getLogger("bookstore.modules")


class SandboxError(Exception):
    """A module was refused, failed, ran out of time, or took its process down; ``message`` says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModuleSandbox:
    """One worker process holding the loaded modules, driven over pipes, one request at a time."""

    def __init__(self, *, load_seconds: float = LOAD_SECONDS, rank_seconds: float = RANK_SECONDS) -> None:
        self.load_seconds = load_seconds
        self.rank_seconds = rank_seconds
        self._sources: dict[str, str] = {}  # every module loaded successfully, to load again in a new worker
        self._loaded: set[str] = set()  # the ones the current worker holds
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._last_id = 0
        self._stopping: set[asyncio.Task[None]] = set()

    @property
    def pid(self) -> int | None:
        """The current worker's pid (None before the first call or after it was stopped)."""
        return self._process.pid if self._process is not None else None

    async def load(self, reference: str, source: str) -> str:
        """Run a module's source in the worker; its description, or SandboxError if it does not load in time."""
        async with self._lock:
            answer = await self._exchange({"op": "load", "reference": reference, "source": source}, self.load_seconds)
            self._sources[reference] = source
            self._loaded.add(reference)
            return str(answer.get("description", ""))

    async def rank(self, reference: str, books: list[dict[str, Any]]) -> list[str | None]:
        """The book ids in the order the module's rank() gives them (SandboxError if it fails or is late).

        The time limit counts from the call, waiting for the worker included, so a slow module makes
        every caller wait at most ``rank_seconds`` (plus a reload, when a new worker must load it first).
        """
        try:
            async with asyncio.timeout(self.rank_seconds):
                await self._lock.acquire()
        except TimeoutError:
            raise SandboxError(
                f"{reference} did not answer rank() within {self.rank_seconds:g} s (its process was busy)"
            ) from None
        try:
            if reference not in self._loaded:
                if reference not in self._sources:
                    raise SandboxError(f"{reference} is not loaded")
                await self._exchange(
                    {"op": "load", "reference": reference, "source": self._sources[reference]}, self.load_seconds
                )
                self._loaded.add(reference)
            answer = await self._exchange({"op": "rank", "reference": reference, "books": books}, self.rank_seconds)
        finally:
            self._lock.release()
        ids = answer.get("ids")
        if not isinstance(ids, list):
            raise SandboxError(f"{reference}: the module process answered without a ranking")
        return [book_id if isinstance(book_id, str) else None for book_id in ids]

    async def unload(self, reference: str) -> None:
        """Forget a module (in this worker and for the next ones)."""
        async with self._lock:
            self._sources.pop(reference, None)
            if reference in self._loaded:
                self._loaded.discard(reference)
                with contextlib.suppress(SandboxError):
                    await self._exchange({"op": "unload", "reference": reference}, self.load_seconds)

    async def close(self) -> None:
        """Stop the worker (its stdin closed, then killed if it lingers)."""
        async with self._lock:
            await self._stop(graceful=True)
        await asyncio.gather(*self._stopping, return_exceptions=True)

    # -- one request, one answer ---------------------------------------------------------------

    async def _started(self) -> asyncio.subprocess.Process:
        if self._process is None or self._process.returncode is not None:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bookstore.modules.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=_ANSWER_LIMIT_BYTES,
            )
            self._loaded.clear()
            _log.info("started the ranking module process (pid %d)", self._process.pid)
        return self._process

    async def _exchange(self, request: dict[str, Any], seconds: float) -> dict[str, Any]:
        """Send one request and read its answer within `seconds` (call with the lock held)."""
        reference = request.get("reference", "")
        process = await self._started()
        assert process.stdin is not None and process.stdout is not None
        self._last_id += 1
        request = {"id": self._last_id, **request}
        try:
            async with asyncio.timeout(seconds):
                process.stdin.write(json.dumps(request).encode() + b"\n")
                await process.stdin.drain()
                line = await process.stdout.readline()
        except TimeoutError:
            await self._stop(graceful=False)
            doing = "finish loading" if request["op"] == "load" else f"answer {request['op']}()"
            raise SandboxError(f"{reference} did not {doing} within {seconds:g} s; its process was stopped") from None
        except (ConnectionError, ValueError, asyncio.LimitOverrunError) as exc:
            await self._stop(graceful=False)
            raise SandboxError(f"{reference}: the module process failed ({type(exc).__name__}: {exc})") from None
        except BaseException:
            # Cancelled mid-request: its answer would be read by the next caller, so this worker must go.
            self._stop_soon()
            raise
        if not line:
            code = await process.wait()
            self._detach()
            raise SandboxError(f"{reference}: the module process exited (code {code}) during {request['op']}()")
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("id") != request["id"]:
            await self._stop(graceful=False)
            raise SandboxError(f"{reference}: the module process answered out of turn; it was stopped")
        if not answer.get("ok"):
            raise SandboxError(str(answer.get("error", "the module failed")))
        return answer

    async def _stop(self, *, graceful: bool) -> None:
        process = self._detach()
        if process is None:
            return
        if graceful and process.stdin is not None:
            process.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), _STOP_SECONDS)
        await self._reap(process)

    def _stop_soon(self) -> None:
        """Kill the worker now (no later caller may read its answers) and reap it in the background."""
        process = self._detach()
        if process is not None:
            task = asyncio.get_running_loop().create_task(self._reap(process))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def _detach(self) -> asyncio.subprocess.Process | None:
        process, self._process = self._process, None
        self._loaded.clear()
        return process if process is not None and process.returncode is None else None

    @staticmethod
    async def _reap(process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        _log.info("stopped the ranking module process (pid %d)", process.pid)
