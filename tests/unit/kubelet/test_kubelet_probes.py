"""Probe attempts (httpGet through a mock transport, tcpSocket against a real socket) and thresholds."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx

from localcluster.kubelet._probes import ProbeResult, ProbeState, ProbeTarget, run_probe


def target(tmp_path: Path, ports: dict[str, int] | None = None) -> ProbeTarget:
    return ProbeTarget("127.0.0.1", ports or {}, {}, tmp_path)


def probe_with(handler: httpx.MockTransport, probe: dict, tmp_path: Path) -> ProbeResult:
    async def go() -> ProbeResult:
        async with httpx.AsyncClient(transport=handler) as client:
            return await run_probe(probe, target(tmp_path, {"http": 8080}), client)

    return asyncio.run(go())


def test_http_probes_pass_below_400_and_say_the_status_otherwise(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302 if request.url.path == "/moved" else 503)

    transport = httpx.MockTransport(answer)
    header = [{"name": "X-Probe", "value": "yes"}]
    moved = probe_with(transport, {"httpGet": {"path": "/moved", "port": "http", "httpHeaders": header}}, tmp_path)
    assert moved.success
    assert str(seen[0].url) == "http://127.0.0.1:8080/moved"
    assert seen[0].headers["user-agent"].startswith("kube-probe/") and seen[0].headers["x-probe"] == "yes"
    failed = probe_with(transport, {"httpGet": {"path": "/health", "port": 8080}}, tmp_path)
    assert failed == ProbeResult(False, "HTTP probe failed with statuscode: 503")
    unnamed = probe_with(transport, {"httpGet": {"path": "/", "port": "admin"}}, tmp_path)
    assert unnamed == ProbeResult(False, "port 'admin' names no port of the container")


def test_tcp_probes_connect_or_report_the_refusal(tmp_path: Path) -> None:
    async def go() -> tuple[ProbeResult, ProbeResult, int]:
        async with httpx.AsyncClient() as client:
            with socket.socket() as listener:
                listener.bind(("127.0.0.1", 0))
                listener.listen()
                port = listener.getsockname()[1]
                listening = await run_probe({"tcpSocket": {"port": port}}, target(tmp_path), client)
            closed = await run_probe({"tcpSocket": {"port": port}}, target(tmp_path), client)
        return listening, closed, port

    listening, closed, port = asyncio.run(go())
    assert listening.success
    assert closed == ProbeResult(False, f"dial tcp 127.0.0.1:{port}: connect: connection refused")


def test_thresholds_decide_after_consecutive_results() -> None:
    state = ProbeState({"failureThreshold": 2, "successThreshold": 2})
    assert state.observe(ProbeResult(False)) is None
    assert state.observe(ProbeResult(True)) is None, "a success resets the failures"
    assert state.observe(ProbeResult(True)) is True
    assert state.observe(ProbeResult(False)) is None
    assert state.observe(ProbeResult(False)) is False


def test_defaults_are_one_success_and_three_failures() -> None:
    state = ProbeState({})
    assert state.observe(ProbeResult(True)) is True
    assert [state.observe(ProbeResult(False)) for _ in range(3)] == [None, None, False]
