"""A pseudo-terminal for a process that asks for a tty (`kubectl exec -t`, a container's `tty: true`).

The process gets the terminal's slave side as stdin, stdout and stderr and as its controlling
terminal (a shell then has job control); the kubelet holds the master side, reading the output and
writing the client's input, and resizes it as the client's terminal changes.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import os
import struct
import termios


class Terminal:
    """The pseudo-terminal of a tty session: the client's side is the master."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()

    def resize(self, data: bytes) -> None:
        try:
            size = json.loads(data)
            rows, cols = int(size.get("Height", 0)), int(size.get("Width", 0))
        except (ValueError, TypeError, AttributeError):
            return
        if 0 < rows < 65536 and 0 < cols < 65536:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    async def streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: TerminalOutput(reader), os.fdopen(self.master, "rb", 0))
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(os.dup(self.master), "wb", 0)
        )
        return reader, asyncio.StreamWriter(transport, protocol, None, loop)


class TerminalOutput(asyncio.StreamReaderProtocol):
    def connection_lost(self, exc: Exception | None) -> None:
        # A pty's master reads EIO once the last process holding the terminal has exited: its EOF
        # (an error would make the reader drop the output it still holds).
        super().connection_lost(None if isinstance(exc, OSError) and exc.errno == errno.EIO else exc)


def controlling_terminal() -> None:
    """In the child, after setsid: make stdin (the pty) its controlling terminal, as a shell wants."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
