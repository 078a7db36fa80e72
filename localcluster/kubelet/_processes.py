"""A container instance as a process group: start it, collect its output, stop it gracefully.

Each instance runs in a session of its own (so its whole group can be signalled and it survives
neither `lab down` nor, through `localcluster.processes`, a crash of the server). When the main
process exits, whatever it left in its group is killed, as a PID namespace would on container exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster import processes
from localcluster.kubelet._logs import LiveLog, LogLimits, LogWriter, log_path
from localcluster.kubelet._terminal import Terminal, controlling_terminal


class StartError(Exception):
    """The process could not be started (`StartError`, exit code 128), e.g. no such executable."""


@dataclass
class Instance:
    """One running container instance."""

    process: asyncio.subprocess.Process
    writer: LogWriter
    home: Path
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    #: Where `kubectl attach -i` writes: the stdin pipe, or the terminal (None without `stdin: true`).
    stdin: asyncio.StreamWriter | None = None
    #: The container's terminal when it has `tty: true` (attach -t resizes it).
    terminal: Terminal | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def container_id(self) -> str:
        return f"localcluster://{self.pid}"

    async def wait(self) -> int:
        """Wait for the main process, kill what it left in its group, return the exit code (128+signal)."""
        code = await self.process.wait()
        signal_group(self.pid, signal.SIGKILL)
        await asyncio.gather(*self.pumps, return_exceptions=True)
        self.writer.close()
        processes.forget(self.home, self.pid)
        return 128 - code if code < 0 else code

    async def stop(self, grace: float) -> None:
        """SIGTERM the group, SIGKILL it after `grace` seconds (at once for 0); returns once it exited."""
        if self.process.returncode is None and grace > 0:
            signal_group(self.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.process.wait()), grace)
        if self.process.returncode is None:
            signal_group(self.pid, signal.SIGKILL)
        await self.process.wait()


def signal_group(pgid: int, signum: int) -> None:
    """Signal a process group that may be gone already."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def start(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    pod_dir: Path,
    container: str,
    home: Path,
    label: str,
    log_limits: LogLimits,
    stdin: bool = False,
    tty: bool = False,
    process_options: dict[str, Any] | None = None,
) -> Instance:
    """Start a container instance with its output going to its log file (see `_logs`), rotated at `log_limits`.

    `stdin`: the container's `stdin: true`, a pipe (or with `tty`, the terminal) that `kubectl attach -i`
    writes to; else /dev/null. `tty`: the container's `tty: true`, a terminal for its stdin and output.
    `process_options`: the container's user and groups (`RunAs.process_options`), if not localcluster's.
    """
    terminal = Terminal() if tty else None
    streams: dict[str, Any] = {
        "stdin": asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        "stdout": asyncio.subprocess.PIPE,
        "stderr": asyncio.subprocess.PIPE,
    }
    if terminal is not None:
        streams = {"stdin": terminal.slave, "stdout": terminal.slave, "stderr": terminal.slave}
        streams["preexec_fn"] = controlling_terminal
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=env, start_new_session=True, **{**streams, **(process_options or {})}
        )
    except FileNotFoundError as exc:
        if exc.filename and Path(str(exc.filename)) == cwd:
            raise StartError(f"chdir to cwd ({cwd}) set in config.json failed: no such file or directory") from None
        raise StartError(f'exec: "{argv[0]}": executable file not found in $PATH') from None
    except PermissionError:
        raise StartError(f'exec: "{argv[0]}": permission denied') from None
    finally:
        if terminal is not None:
            os.close(terminal.slave)
    processes.record(home, process.pid, label)
    writer = LogWriter(log_path(pod_dir, container, f"localcluster://{process.pid}"), LiveLog(), log_limits)
    instance = Instance(process, writer, home, stdin=process.stdin, terminal=terminal)
    if terminal is not None:
        output, terminal_input = await terminal.streams()
        instance.stdin = terminal_input if stdin else None
        instance.pumps = [asyncio.create_task(writer.pump("stdout", output))]
        return instance
    assert process.stdout is not None and process.stderr is not None
    instance.pumps = [
        asyncio.create_task(writer.pump("stdout", process.stdout)),
        asyncio.create_task(writer.pump("stderr", process.stderr)),
    ]
    return instance
