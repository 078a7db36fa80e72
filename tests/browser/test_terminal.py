"""A JupyterLab terminal, started as `make run` starts JupyterLab, runs the project's `lab` and `kubectl`.

The terminal is a login shell, and a login shell's profile may set PATH afresh (Debian's /etc/profile
does; here ~/.profile does too, as a hostile dotfile would). It is driven as JupyterLab drives it:
created through the REST API, spoken to over terminado's WebSocket protocol.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import httpx
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.browser.conftest import JupyterLab

pytestmark = pytest.mark.browser

#: Seconds the shell may take to start and answer.
ANSWER_TIMEOUT = 30.0
DONE = "labkit-terminal-done"
#: Terminal control sequences (colours, bracketed paste) around what the shell printed.
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


async def run_in_terminal(lab: JupyterLab, command: str) -> str:
    """Open a terminal, type `command`, and return what it printed up to a marker line."""
    created = httpx.post(f"{lab.url}api/terminals", params={"token": lab.token}, trust_env=False)
    created.raise_for_status()
    name = created.json()["name"]
    url = lab.url.replace("http://", "ws://") + f"terminals/websocket/{name}?token={lab.token}"
    socket = await websocket_connect(HTTPRequest(url))
    try:
        socket.write_message(json.dumps(["stdin", f"{command}; echo {DONE}\r"]))
        output = ""
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while f"\n{DONE}" not in output.replace("\r", ""):
                message = await socket.read_message()
                if message is None:
                    raise AssertionError(f"the terminal closed; it printed:\n{output}")
                kind, *content = json.loads(message)
                if kind == "stdout":
                    output += content[0]
        return ESCAPES.sub("", output.replace("\r", ""))
    finally:
        socket.close()
        httpx.delete(f"{lab.url}api/terminals/{name}", params={"token": lab.token}, trust_env=False)


def test_the_terminal_runs_the_projects_lab_and_kubectl(jupyterlab: JupyterLab, tmp_path: Path) -> None:
    # The terminal's HOME is the fixture's: give it a profile that throws the server's PATH away.
    home = tmp_path / "jupyter" / "home"
    (home / ".profile").write_text("PATH=/usr/bin:/bin\nexport PATH\n")
    tools = Path(sys.executable).parent

    printed = asyncio.run(run_in_terminal(jupyterlab, "command -v lab kubectl; lab kubeconfig | tail -n 1"))

    lines = [line.strip() for line in printed.splitlines()]
    assert str(tools / "lab") in lines, printed
    assert str(tools / "kubectl") in lines, printed
    # The terminal's kubectl and lab reach the notebook's cluster: LAB_HOME's kubeconfig.
    assert any(line.endswith("lab-home/kubeconfig") for line in lines), printed
