"""What a waiting cell or command shows while it waits: a live line in the notebook, a line on the terminal.

Both are `ProgressReporter`s: polls (labkit._waiting) hand them each look, from whichever thread
polls. The notebook line is redrawn only from the thread that showed it (the cell's own), because
Jupyter routes output by the cell that is executing; a check running in a worker thread therefore
has its caller `refresh()` the line while it waits.
"""

from __future__ import annotations

import html
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import IO, Any

#: How often a waiting cell redraws its line (the elapsed time moves even between two looks).
REFRESH_INTERVAL = 0.5
#: Without a terminal to redraw a line in, one line per this many seconds.
LOG_INTERVAL = 5.0
_GREY = "#5f6b7a"


@dataclass(frozen=True)
class Progress:
    """One look while waiting: what is awaited, since when, until when, and what was seen."""

    what: str
    started: float
    elapsed: float
    timeout: float
    seen: str = ""

    @property
    def deadline(self) -> datetime:
        return datetime.fromtimestamp(self.started + self.timeout).astimezone()

    def text(self) -> str:
        """One line: "waiting for X: 12 s of at most 90 s (until 14:03:22); now: what was seen"."""
        line = (
            f"waiting for {self.what}: {self.elapsed:.0f} s of at most {self.timeout:.0f} s "
            f"(until {self.deadline:%H:%M:%S})"
        )
        return f"{line}; now: {self.seen}" if self.seen else line


ProgressReporter = Callable[[Progress], None]


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (widgets and live displays need one; IPython in a terminal is not)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class LiveProgress:
    """A line under the running cell saying what is awaited, for how long and until when; gone at the end.

    Used as a context manager; call it with each `Progress` (from any thread) and `refresh()` it from
    the cell's thread.
    """

    def __init__(self, title: str = "") -> None:
        self._title = title
        self._latest: Progress | None = None
        self._handle: Any = None
        self._drawn: dict[str, str] | None = None
        self._owner = threading.get_ident()

    def __enter__(self) -> LiveProgress:
        from IPython.display import display

        self._owner = threading.get_ident()
        self._drawn = self._bundle()
        self._handle = display(self._drawn, raw=True, display_id=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._handle is not None:
            self._handle.update({"text/plain": ""}, raw=True)

    def __call__(self, progress: Progress) -> None:
        self._latest = progress
        if threading.get_ident() == self._owner:
            self.refresh()

    def refresh(self) -> None:
        """Redraw the line (from the cell's thread), moving the elapsed time on since the last look."""
        bundle = self._bundle()
        if self._handle is not None and bundle != self._drawn:
            self._handle.update(bundle, raw=True)
            self._drawn = bundle

    def _current(self) -> Progress | None:
        latest = self._latest
        if latest is None:
            return None
        elapsed = min(max(latest.elapsed, time.time() - latest.started), latest.timeout)
        return Progress(latest.what, latest.started, elapsed, latest.timeout, latest.seen)

    def _bundle(self) -> dict[str, str]:
        progress = self._current()
        head = f"{self._title}: " if self._title else ""
        text = f"⏳ {head}{progress.text() if progress else 'looking…'}"
        if progress is None:
            body = f"⏳ {html.escape(head)}looking…"
        else:
            bar = f'<progress value="{progress.elapsed:.1f}" max="{progress.timeout:.1f}" style="width:8em"></progress>'
            seen = f"<div>now: {html.escape(progress.seen)}</div>" if progress.seen else ""
            body = (
                f"⏳ {html.escape(head)}waiting for {html.escape(progress.what)} {bar} "
                f"{progress.elapsed:.0f} s of at most {progress.timeout:.0f} s "
                f"(until {progress.deadline:%H:%M:%S}){seen}"
            )
        return {"text/plain": text, "text/html": f'<div class="labkit-waiting" style="color:{_GREY}">{body}</div>'}


class TerminalProgress:
    """The same line on a terminal: redrawn in place on a TTY, else one line every few seconds."""

    def __init__(self, stream: IO[str] | None = None, *, title: str = "") -> None:
        self._stream = stream or sys.stderr
        self._title = title
        self._last_logged = 0.0
        self._drawn = False

    def __call__(self, progress: Progress) -> None:
        head = f"{self._title}: " if self._title else ""
        line = f"{head}{progress.text()}"
        if self._stream.isatty():
            self._stream.write(f"\r\x1b[2K{line[:200]}")
            self._drawn = True
        elif time.monotonic() - self._last_logged >= LOG_INTERVAL:
            self._stream.write(f"{line}\n")
            self._last_logged = time.monotonic()
        self._stream.flush()

    def clear(self) -> None:
        """Remove the redrawn line (before the verdict is printed where it was)."""
        if self._drawn:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn = False
