"""JupyterLab terminals with the workshop's `lab` and `kubectl` first on PATH, whatever the login shell does.

A Jupyter server extension. Jupyter starts terminals as login shells (`bash -l`), and a login shell
reads /etc/profile, which on Debian (and in most JupyterHub and Binder images) sets PATH afresh: the
project's virtual environment, first on the server's PATH, is gone, so `lab` is not found and
`kubectl` is whatever the machine has. This extension starts terminals as `bash` with an rc file
(labkit/terminal/bashrc) that reads what a login shell reads, then puts the project's tools in
front. The server's environment (KUBECONFIG, LAB_HOME) passes through unchanged.

It changes nothing when the server is given a terminal command of its own
(`--ServerApp.terminado_settings={'shell_command': [...]}`). `lab jupyter` enables it through
labkit/jupyter-config (infra/README.md says how Binder and JupyterHub images do), or alone::

    jupyter lab --ServerApp.jpserver_extensions="{'labkit.jupyter_terminal': True}"
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__ = ["RC_FILE", "TOOLS", "shell_command"]

#: The rc file the terminal's bash reads instead of ~/.bashrc (it reads the login files itself).
RC_FILE = Path(__file__).resolve().parent / "terminal" / "bashrc"
#: Where the project's `lab`, `kubectl` and `python` live: beside this interpreter.
TOOLS = Path(sys.executable).parent


def shell_command() -> list[str]:
    """bash, interactive, with the workshop's rc file; the tools' directory travels in LABKIT_TOOLS."""
    bash = shutil.which("bash") or "/bin/bash"
    return ["env", f"LABKIT_TOOLS={TOOLS}", bash, "--rcfile", str(RC_FILE), "-i"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "labkit.jupyter_terminal"}]


def _link_jupyter_server_extension(serverapp: ServerApp) -> None:
    # Linking happens before any extension loads, so the terminals extension reads this setting.
    settings = dict(serverapp.terminado_settings or {})
    if "shell_command" not in settings:
        settings["shell_command"] = shell_command()
        serverapp.terminado_settings = settings


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    serverapp.log.info("terminals start with %s first on PATH", TOOLS)
