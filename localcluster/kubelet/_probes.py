"""Readiness, liveness and startup probes: httpGet, tcpSocket and exec, with upstream's wording."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

USER_AGENT = "kube-probe/1.37"


@dataclass(frozen=True)
class ProbeResult:
    success: bool
    output: str = ""


@dataclass(frozen=True)
class ProbeTarget:
    """Where and how a container's probes run: its pod address, ports and process environment."""

    pod_ip: str
    ports: dict[str, int]
    env: dict[str, str]
    cwd: Path


def _port(value: Any, target: ProbeTarget) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return target.ports.get(str(value))


async def run_probe(probe: dict[str, Any], target: ProbeTarget, client: httpx.AsyncClient) -> ProbeResult:
    """One probe attempt within its timeoutSeconds."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    if "httpGet" in probe:
        return await _http(probe["httpGet"], target, client, timeout)
    if "tcpSocket" in probe:
        return await _tcp(probe["tcpSocket"], target, timeout)
    if "exec" in probe:
        return await _exec(probe["exec"].get("command") or [], target, timeout)
    return ProbeResult(False, "localcluster supports httpGet, tcpSocket and exec probes only")


async def _http(action: dict[str, Any], target: ProbeTarget, client: httpx.AsyncClient, timeout: float) -> ProbeResult:
    port = _port(action.get("port"), target)
    host = action.get("host") or target.pod_ip
    scheme = str(action.get("scheme") or "HTTP").lower()
    path = action.get("path") or "/"
    url = f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"
    if port is None:
        return ProbeResult(False, f"port {action.get('port')!r} names no port of the container")
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    headers.update({h.get("name", ""): h.get("value", "") for h in action.get("httpHeaders") or []})
    try:
        response = await client.get(url, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        deadline = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        return ProbeResult(False, f'Get "{url}": {deadline}')
    except httpx.HTTPError as exc:
        return ProbeResult(False, f'Get "{url}": dial tcp {host}:{port}: connect: {_reason(exc)}')
    if 200 <= response.status_code < 400:
        return ProbeResult(True)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {response.status_code}")


def _reason(exc: BaseException) -> str:
    text = str(exc).lower()
    return "connection refused" if "refused" in text or "errno 111" in text else (str(exc) or type(exc).__name__)


async def _tcp(action: dict[str, Any], target: ProbeTarget, timeout: float) -> ProbeResult:
    port = _port(action.get("port"), target)
    host = action.get("host") or target.pod_ip
    if port is None:
        return ProbeResult(False, f"port {action.get('port')!r} names no port of the container")
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return ProbeResult(False, f"dial tcp {host}:{port}: i/o timeout")
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return ProbeResult(False, f"dial tcp {host}:{port}: connect: {reason.lower()}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(True)


async def _exec(command: list[str], target: ProbeTarget, timeout: float) -> ProbeResult:
    if not command:
        return ProbeResult(False, "exec probe has no command")
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=target.cwd,
            env=target.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return ProbeResult(False, f'exec: "{command[0]}": {(exc.strerror or str(exc)).lower()}')
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return ProbeResult(False, f"command {command!r} timed out")
    text = output.decode(errors="replace").strip()
    if process.returncode == 0:
        return ProbeResult(True, text)
    return ProbeResult(False, text or f"command {command!r} exited with {process.returncode}")


@dataclass
class ProbeState:
    """Consecutive results of one probe against its thresholds."""

    probe: dict[str, Any]
    successes: int = 0
    failures: int = 0

    def observe(self, result: ProbeResult) -> bool | None:
        """Record a result; True/False once a threshold is crossed, None while undecided."""
        if result.success:
            self.failures = 0
            self.successes += 1
            return True if self.successes >= int(self.probe.get("successThreshold") or 1) else None
        self.successes = 0
        self.failures += 1
        return False if self.failures >= int(self.probe.get("failureThreshold") or 3) else None
