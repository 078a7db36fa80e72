"""`kubectl exec` and `kubectl attach` sessions: a process of the pod's world relayed over channels.

An exec'd command runs as its container does (`Launch`): as its user, with the container's environment and working
directory, paths under a volume's mountPath rewritten to the volume (see `_volumes`), the pod's
address through the network shim, in a process group of its own that dies with the pod. With a
tty it gets a pseudo-terminal (resized as the client asks) and stdout carries stderr too, as in a
container. The error channel reports how it ended: from v4 on a `metav1.Status`, Success or
`NonZeroExitCode` with the code as an `ExitCode` cause, which kubectl turns into its exit code.

`kubectl cp` is `tar cf - PATH` (from the pod) and `tar -xmf - -C DIR` (into it) through exec. tar
names archive members after the path it is given, and a volume's path on the host is not its
mountPath, so exec'd commands get `TAR_OPTIONS` with one `--transform` per volume mount that names
its files as the pod sees them (GNU tar; what `kubectl cp` expects).

Attach joins the running instance: its output from now on (`LogWriter.subscribe`) and, when the
container has `stdin: true`, its stdin pipe, closed after the first session when `stdinOnce`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from localcluster import processes
from localcluster.api.errors import BadRequest
from localcluster.kubelet._channels import CLOSE_CHANNEL, ChannelSocket, ProtocolError
from localcluster.kubelet._processes import signal_group
from localcluster.kubelet._terminal import Terminal, controlling_terminal

if TYPE_CHECKING:
    from starlette.datastructures import QueryParams

    from localcluster.kubelet._volumes import MountTable
    from localcluster.kubelet._worker import ContainerRunner, Launch, PodWorker

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
_READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class StreamOptions:
    """`PodExecOptions` / `PodAttachOptions` from the query string."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    command: tuple[str, ...] = ()

    @classmethod
    def parse(cls, params: QueryParams, *, with_command: bool) -> StreamOptions:
        def flag(key: str, default: bool) -> bool:
            value = params.get(key)
            if value is None:
                return default
            if value.lower() in ("true", "1"):
                return True
            if value.lower() in ("false", "0", ""):
                return False
            raise BadRequest(f"invalid {key} {value[:32]!r}: must be true or false")

        tty = flag("tty", False)
        options = cls(
            stdin=flag("stdin", False),
            stdout=flag("stdout", True),
            stderr=flag("stderr", True) and not tty,
            tty=tty,
            command=tuple(params.getlist("command")),
        )
        if not (options.stdin or options.stdout or options.stderr):
            raise BadRequest("you must specify at least 1 of stdin, stdout, stderr")
        if with_command and not options.command:
            raise BadRequest("you must specify at least one command for the container")
        return options


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(argv: list[str], code: int) -> dict[str, Any]:
    """What the kubelet reports for a command that exited non-zero (kubectl exits with the code)."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command {_go_list(argv)}, "
        f"exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_status(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def _go_list(words: list[str]) -> str:
    return "[" + " ".join(words) + "]"


async def send_status(channels: ChannelSocket, status: dict[str, Any]) -> None:
    """The error channel's last word: a Status (v4+), or for older protocols the message of a failure."""
    if channels.protocol.version >= 4:
        await channels.send(ERROR, json.dumps(status).encode())
    elif status["status"] != "Success":
        await channels.send(ERROR, status["message"].encode())


async def announce(channels: ChannelSocket, options: StreamOptions) -> None:
    """An empty message on the lowest channel the server writes, as the kubelet opens a session."""
    await channels.send(STDOUT if options.stdout else STDERR if options.stderr else ERROR, b"")


def tar_options(mounts: MountTable) -> str:
    """GNU tar options naming a volume's files by their mountPath (see the module docstring)."""
    rules = []
    for mount_path, link in sorted(mounts.links.items(), key=lambda item: -len(str(item[1].resolve()))):
        host = str(link.resolve()).lstrip("/")
        rules.append(f"--transform=s|^/\\?{_basic_regex(host)}|{mount_path.lstrip('/')}|S")
    return " ".join(shlex.quote(rule) for rule in rules)


def _basic_regex(text: str) -> str:
    return re.sub(r"([.\[\]*^$\\|])", r"\\\1", text)


def exec_argv(launch: Launch, command: tuple[str, ...]) -> list[str]:
    """The command with paths under mountPaths pointing at the volumes (as the container's own args)."""
    argv = []
    for word in command:
        flag, equals, value = word.partition("=")
        if equals and not word.startswith("/"):
            argv.append(f"{flag}={_volume_path(launch.mounts, value)}")
        else:
            argv.append(_volume_path(launch.mounts, word))
    return argv


def _volume_path(mounts: MountTable, path: str) -> str:
    """A path under a mountPath as the volume's own path (not through the mount's symlink in the pod
    root, so tar archives the volume's files rather than the symlink, naming them by `tar_options`)."""
    rewritten = mounts.rewrite(path)
    for link in mounts.links.values():
        if rewritten == str(link) or rewritten.startswith(f"{link}/"):
            return str(link.resolve()) + rewritten[len(str(link)) :]
    return rewritten


async def run_command(
    channels: ChannelSocket, worker: PodWorker, launch: Launch, argv: list[str], options: StreamOptions
) -> None:
    """Run `argv` in the container's world, relay its streams, and report how it ended."""
    terminal = Terminal() if options.tty else None
    pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    env = {**launch.env, "TAR_OPTIONS": tar_options(launch.mounts)}
    try:
        if terminal is not None:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=launch.cwd,
                env={**env, "TERM": env.get("TERM", "xterm")},
                stdin=terminal.slave,
                stdout=terminal.slave,
                stderr=terminal.slave,
                start_new_session=True,
                preexec_fn=controlling_terminal,
                **launch.process_options(),
            )
            os.close(terminal.slave)
        else:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=launch.cwd,
                env=env,
                stdin=pipe if options.stdin else devnull,
                stdout=pipe if options.stdout else devnull,
                stderr=pipe if options.stderr else devnull,
                start_new_session=True,
                **launch.process_options(),
            )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        if terminal is not None:
            os.close(terminal.master)
            os.close(terminal.slave)
        reason = "permission denied" if isinstance(exc, PermissionError) else "executable file not found in $PATH"
        await announce(channels, options)
        await send_status(
            channels,
            internal_status(
                f"error executing command in container: failed to exec in container: OCI runtime exec failed: "
                f'exec failed: unable to start container process: exec: "{argv[0]}": {reason}: unknown'
            ),
        )
        return
    home, pgid = worker.kubelet.home, process.pid
    processes.record(home, pgid, f"pod {worker.namespace}/{worker.name} exec {argv[0]}")
    worker.exec_groups.add(pgid)
    try:
        await announce(channels, options)
        if terminal is not None:
            reader, writer = await terminal.streams()
            outputs: list[tuple[asyncio.StreamReader | None, int]] = [(reader, STDOUT)]
            stdin: asyncio.StreamWriter | None = writer if options.stdin else None
        else:
            outputs = [(process.stdout, STDOUT), (process.stderr, STDERR)]
            stdin = process.stdin
        code = await _relay(channels, process, outputs, stdin, terminal)
        if code is None:
            return  # the client went away; the session ended with it
        await send_status(channels, success_status() if code == 0 else exit_status(argv, code))
    finally:
        signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await process.wait()
        worker.exec_groups.discard(pgid)
        processes.forget(home, pgid)


async def _relay(
    channels: ChannelSocket,
    process: asyncio.subprocess.Process,
    outputs: list[tuple[asyncio.StreamReader | None, int]],
    stdin: asyncio.StreamWriter | None,
    terminal: Terminal | None,
) -> int | None:
    """Copy the client's input in and the output out until the process exits (its exit code, 128+signal
    for a signal) or the client leaves (None)."""

    def close_stdin() -> None:
        if stdin is not None and not stdin.is_closing():
            if terminal is not None:
                stdin.write(b"\x04")  # EOF, as a terminal's ^D
            else:
                stdin.close()

    async def resize(data: bytes) -> None:
        if terminal is not None:
            terminal.resize(data)

    feeder = asyncio.create_task(_feed(channels, stdin, close_stdin, resize))
    pumps = [asyncio.create_task(_pump(channels, reader, channel)) for reader, channel in outputs if reader]
    exited = asyncio.create_task(process.wait())
    try:
        await asyncio.wait({feeder, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            return None
        # What the command left running in its group goes with it, as in a container's exec.
        signal_group(process.pid, signal.SIGKILL)
        await asyncio.gather(*pumps, return_exceptions=True)
        code = exited.result()
        return 128 - code if code < 0 else code
    finally:
        for task in [feeder, *pumps, exited]:
            task.cancel()
        await asyncio.gather(feeder, *pumps, exited, return_exceptions=True)


async def _pump(channels: ChannelSocket, reader: asyncio.StreamReader, channel: int) -> None:
    while True:
        try:
            chunk = await reader.read(_READ_BYTES)
        except OSError:  # a pty reads EIO once the last process holding it has exited
            return
        if not chunk:
            return
        await channels.send(channel, chunk)


async def _feed(
    channels: ChannelSocket,
    stdin: asyncio.StreamWriter | None,
    close_stdin: Callable[[], None],
    resize: Callable[[bytes], Awaitable[None]],
) -> None:
    """Deliver the client's messages until it leaves: stdin bytes, stdin's close signal, resizes."""
    while True:
        try:
            message = await channels.receive()
        except ProtocolError:
            return
        if message is None:
            return
        channel, data = message
        if channel == STDIN and stdin is not None and not stdin.is_closing():
            stdin.write(data)
            with contextlib.suppress(ConnectionError):
                await stdin.drain()
        elif channel == CLOSE_CHANNEL and data == bytes([STDIN]):
            close_stdin()
        elif channel == RESIZE:
            await resize(data)


async def attach(channels: ChannelSocket, runner: ContainerRunner, options: StreamOptions) -> None:
    """Relay the running instance's output (and input to its stdin) until it exits or the client leaves."""
    instance = runner.instance
    assert instance is not None
    container_stdin = instance.stdin if options.stdin else None
    once = bool(runner.container.get("stdinOnce"))
    output = instance.writer.subscribe()

    def close_stdin() -> None:
        if container_stdin is None or not once or container_stdin.is_closing():
            return
        if instance.terminal is not None:
            container_stdin.write(b"\x04")  # EOF, as a terminal's ^D
        else:
            container_stdin.close()

    async def resize(data: bytes) -> None:
        if instance.terminal is not None and options.tty:
            instance.terminal.resize(data)

    async def relay_output() -> None:
        while (item := await output.get()) is not None:
            stream, chunk = item
            channel = STDERR if stream == "stderr" and not options.tty else STDOUT
            if (channel == STDOUT and options.stdout) or (channel == STDERR and options.stderr):
                await channels.send(channel, chunk)

    await announce(channels, options)
    feeder = asyncio.create_task(_feed(channels, container_stdin, close_stdin, resize))
    relay = asyncio.create_task(relay_output())
    try:
        await asyncio.wait({feeder, relay}, return_when=asyncio.FIRST_COMPLETED)
        if relay.done():
            await send_status(channels, success_status())
    finally:
        instance.writer.unsubscribe(output)
        close_stdin()  # stdinOnce: the first attach session that ends closes the container's stdin
        for task in (feeder, relay):
            task.cancel()
        await asyncio.gather(feeder, relay, return_exceptions=True)
