"""Container logs: written in the CRI format the kubelet reads, served as `pods/log` serves them.

Each container instance logs to `$LAB_HOME/pods/<uid>/logs/<container>/<pid>.log`, one line per
output line: `<RFC 3339 nano timestamp> <stdout|stderr> <F|P> <text>` (P: a partial line, as CRI
marks long or unterminated lines). Keeping the time of every line is what makes `timestamps`,
`sinceSeconds` and `sinceTime` work; `follow` waits on the writer, not on a timer.

A log is rotated by size, as the kubelet's container log manager does (`containerLogMaxSize`,
`containerLogMaxFiles`; here `LOCALCLUSTER_LOG_MAX_BYTES` and `LOCALCLUSTER_LOG_MAX_FILES`): past
the size, `<pid>.log` becomes `<pid>.log.<n>` (n counts the rotations) and a new `<pid>.log` starts;
the oldest files go beyond the count. Reading covers the files still kept, so `--tail` gives its
lines right after a rotation (the kubelet reads the current file only), and a follower moves on to
the next file when the one it reads is rotated, losing nothing that is still kept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from starlette.responses import Response, StreamingResponse

from localcluster.api.errors import BadRequest, Cause, invalid

#: Longer lines are stored in pieces marked P, as containerd does (16 KiB).
MAX_LINE_BYTES = 16 * 1024
_READ_BYTES = 64 * 1024


def rfc3339_nano(epoch_ns: int) -> str:
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def log_path(pod_dir: Path, container: str, container_id: str) -> Path:
    return pod_dir / "logs" / container / f"{container_id.rsplit('/', 1)[-1]}.log"


@dataclass(frozen=True)
class LogLimits:
    """When a log file is rotated, and how many files of it are kept (the current one included)."""

    max_bytes: int = 10 * 1024 * 1024
    max_files: int = 5


def rotated_path(path: Path, rotation: int) -> Path:
    """Where the file that was current until rotation `rotation` (1, 2, ...) of `path` lives on."""
    return path.with_name(f"{path.name}.{rotation}")


def rotated_paths(path: Path) -> list[tuple[int, Path]]:
    """The rotated files of `path` still kept, oldest first, with their rotation numbers."""
    found = []
    for candidate in path.parent.glob(f"{path.name}.*"):
        suffix = candidate.name[len(path.name) + 1 :]
        if suffix.isdigit():
            found.append((int(suffix), candidate))
    return sorted(found)


@dataclass
class LiveLog:
    """A log still being written: followers wait for its next change, and end when it closes.

    `rotations` counts the rotations so far: a follower whose file was rotated away reads on in the next.
    """

    closed: bool = False
    rotations: int = 0
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def next_change(self) -> asyncio.Future[None]:
        """A future done at the next write or close (take it before reading, so no write slips by)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_result(None)
        else:
            self._waiters.append(future)
        return future

    def changed(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def close(self) -> None:
        self.closed = True
        self.changed()


#: What an attached client receives: (stream, bytes) as the container writes them; None at its end.
OutputQueue = asyncio.Queue[tuple[str, bytes] | None]


class LogWriter:
    """Appends one container instance's stdout and stderr to its log file, line by line, rotating it by
    size, and hands the raw output to attached clients (`kubectl attach`) as it comes."""

    def __init__(self, path: Path, live: LiveLog, limits: LogLimits | None = None) -> None:
        # The kubelet's alone: a pod's processes (which may run as other users) never read logs directly.
        path.parent.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        self.path = path
        self.live = live
        self.limits = limits or LogLimits()
        self._file = path.open("ab", buffering=0)
        self._size = self._file.tell()
        self._listeners: set[OutputQueue] = set()

    def subscribe(self) -> OutputQueue:
        """A queue of the output from now on, ending with None when the instance has exited."""
        queue: OutputQueue = asyncio.Queue()
        if self.live.closed:
            queue.put_nowait(None)
        else:
            self._listeners.add(queue)
        return queue

    def unsubscribe(self, queue: OutputQueue) -> None:
        self._listeners.discard(queue)

    def write_line(self, stream: str, text: bytes, *, partial: bool) -> None:
        stamp = rfc3339_nano(time.time_ns()).encode()
        line = b"%s %s %s %s\n" % (stamp, stream.encode(), b"P" if partial else b"F", text)
        self._file.write(line)
        self._size += len(line)
        if self._size >= self.limits.max_bytes:
            self._rotate()
        self.live.changed()

    def _rotate(self) -> None:
        """The current file moves aside whole (no reader ever sees half of it renamed) and a new one starts."""
        self._file.close()
        self.path.rename(rotated_path(self.path, self.live.rotations + 1))
        self._file = self.path.open("ab", buffering=0)
        self._size = 0
        self.live.rotations += 1
        kept = rotated_paths(self.path)
        for _rotation, old in kept[: max(len(kept) - (self.limits.max_files - 1), 0)]:
            old.unlink(missing_ok=True)

    async def pump(self, stream: str, reader: asyncio.StreamReader) -> None:
        """Copy a pipe to the log until EOF, splitting it into (possibly partial) lines."""
        pending = b""
        while chunk := await reader.read(_READ_BYTES):
            for listener in self._listeners:
                listener.put_nowait((stream, chunk))
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                for start in range(0, max(len(line), 1), MAX_LINE_BYTES):
                    piece = line[start : start + MAX_LINE_BYTES]
                    self.write_line(stream, piece, partial=start + MAX_LINE_BYTES < len(line))
            while len(pending) >= MAX_LINE_BYTES:
                self.write_line(stream, pending[:MAX_LINE_BYTES], partial=True)
                pending = pending[MAX_LINE_BYTES:]
        if pending:
            self.write_line(stream, pending, partial=True)

    def close(self) -> None:
        self._file.close()
        self.live.close()
        for listener in self._listeners:
            listener.put_nowait(None)
        self._listeners.clear()


@dataclass(frozen=True)
class LogOptions:
    """`PodLogOptions` from the query string, validated as the apiserver does."""

    container: str | None = None
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_ns: int | None = None
    limit_bytes: int | None = None

    @classmethod
    def parse(cls, pod_name: str, params: dict[str, str]) -> LogOptions:
        causes: list[Cause] = []

        def number(key: str, minimum: int, words: str) -> int | None:
            if params.get(key) in (None, ""):
                return None
            try:
                value = int(params[key])
            except ValueError:
                raise BadRequest(f"invalid {key} {params[key][:32]!r}: must be an integer") from None
            if value < minimum:
                causes.append(Cause(key, f"Invalid value: {value}: must be {words}", "FieldValueInvalid"))
            return value

        tail = number("tailLines", 0, "greater than or equal to 0")
        since_seconds = number("sinceSeconds", 1, "greater than 0")
        limit = number("limitBytes", 1, "greater than 0")
        since_ns = None if since_seconds is None else time.time_ns() - since_seconds * 1_000_000_000
        if params.get("sinceTime"):
            if since_seconds is not None:
                causes.append(Cause("", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
            try:
                since_ns = int(datetime.fromisoformat(params["sinceTime"]).timestamp() * 1_000_000_000)
            except ValueError:
                raise BadRequest(f"invalid sinceTime {params['sinceTime'][:40]!r}: must be RFC 3339") from None
        if causes:
            raise invalid("PodLogOptions", "", pod_name, causes)
        return cls(
            container=params.get("container") or None,
            follow=_flag(params, "follow"),
            previous=_flag(params, "previous"),
            timestamps=_flag(params, "timestamps"),
            tail_lines=tail,
            since_ns=since_ns,
            limit_bytes=limit,
        )


def _flag(params: dict[str, str], key: str) -> bool:
    value = params.get(key, "").lower()
    if value in ("", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise BadRequest(f"invalid {key} {params[key][:32]!r}: must be true or false")


def _parse_line(raw: bytes) -> tuple[str, bytes, bool] | None:
    """(timestamp, text, partial) of one stored line; None for a torn write."""
    parts = raw.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    return parts[0].decode(), parts[3] if len(parts) == 4 else b"", parts[2] == b"P"


def render(lines: list[bytes], options: LogOptions) -> Iterator[bytes]:
    """Stored lines as the client wants them (since, timestamps); `tail` is applied by the caller."""
    cutoff = None if options.since_ns is None else rfc3339_nano(options.since_ns)
    for raw in lines:
        parsed = _parse_line(raw)
        if parsed is None:
            continue
        stamp, text, partial = parsed
        if cutoff is not None and stamp < cutoff:
            continue
        yield (f"{stamp} ".encode() if options.timestamps else b"") + text + (b"" if partial else b"\n")


def tail(lines: list[bytes], count: int | None) -> list[bytes]:
    """The stored lines making up the last `count` output lines (a partial line belongs to the next)."""
    if count is None:
        return lines
    kept: list[bytes] = []
    complete = 0
    for raw in reversed(lines):
        parsed = _parse_line(raw)
        if parsed is not None and not parsed[2]:
            if complete == count:
                break
            complete += 1
        kept.append(raw)
    return list(reversed(kept))


class LogService:
    """Serves `GET pods/{name}/log` for the API server from the kubelet's log files."""

    def __init__(self, pods_dir: Path) -> None:
        self.pods_dir = pods_dir
        self.live: dict[Path, LiveLog] = {}

    async def read_logs(self, pod: dict[str, Any], params: dict[str, str]) -> Response:
        name = pod["metadata"]["name"]
        options = LogOptions.parse(name, params)
        container = choose_container(pod, options.container)
        path = _instance_log(self.pods_dir / pod["metadata"]["uid"], pod, container, options.previous)
        live = self.live.get(path)
        if not (options.follow and live is not None and not live.closed):
            body = b"".join(render(tail(_read_lines(path, options.tail_lines), options.tail_lines), options))
            return Response(_limited(body, options.limit_bytes), media_type="text/plain")
        return StreamingResponse(self._follow(path, live, options), media_type="text/plain")

    async def _follow(self, path: Path, live: LiveLog, options: LogOptions) -> AsyncIterator[bytes]:
        """The kept lines (or the tail of them), then each new line as it is written, across rotations.

        Rotation happens on this event loop between awaits, so nothing here can see half of one.
        """
        budget = options.limit_bytes
        reading = live.rotations  # which file the handle holds: the one current after that many rotations
        handle: BinaryIO = path.open("rb")
        earlier = [line for rotation, kept in rotated_paths(path) if rotation <= reading for line in _lines_of(kept)]
        first = True
        try:
            while True:
                change = live.next_change()
                lines = handle.readlines()
                if lines and not lines[-1].endswith(b"\n"):
                    handle.seek(-len(lines.pop()), 1)  # a line still being written: read it whole next time
                if first:
                    lines, first = tail(earlier + lines, options.tail_lines), False
                chunk = b"".join(render(lines, options))
                if chunk:
                    if budget is not None:
                        chunk, budget = chunk[:budget], budget - len(chunk[:budget])
                    yield chunk
                    if budget == 0:
                        return
                elif reading < live.rotations:  # read to the end of a file that was rotated: on to the next
                    handle.close()
                    reading, handle = _next_file(path, reading, live.rotations)
                elif live.closed:
                    return
                else:
                    await change
        finally:
            handle.close()


#: What terminationMessagePolicy FallbackToLogsOnError keeps of a failed container's output (the kubelet's limits).
TERMINATION_MESSAGE_LINES = 80
TERMINATION_MESSAGE_BYTES = 2048


def termination_message(path: Path) -> str:
    """The end of an instance's output, as a failed container's message: its last 80 lines, at most 2048 bytes."""
    text = b"".join(render(tail(_read_lines(path), TERMINATION_MESSAGE_LINES), LogOptions()))
    return text[-TERMINATION_MESSAGE_BYTES:].decode(errors="replace")


def _limited(body: bytes, limit: int | None) -> bytes:
    return body if limit is None else body[:limit]


def _lines_of(path: Path) -> list[bytes]:
    try:
        with path.open("rb") as handle:
            return handle.readlines()
    except FileNotFoundError:  # rotated away (too old to keep) or never written
        return []


def _read_lines(path: Path, tail_lines: int | None = None) -> list[bytes]:
    """The stored lines of a log, its kept rotated files first; with `tail_lines`, only the newest files needed."""
    lines = _lines_of(path)
    for _rotation, kept in reversed(rotated_paths(path)):
        if tail_lines is not None and _complete_lines(lines) > tail_lines:
            break
        lines = _lines_of(kept) + lines
    return lines


def _complete_lines(lines: list[bytes]) -> int:
    return sum(1 for raw in lines if (parsed := _parse_line(raw)) is not None and not parsed[2])


def _next_file(path: Path, reading: int, rotations: int) -> tuple[int, BinaryIO]:
    """The file after the one current after `reading` rotations: a rotated one if it was rotated too, else `path`.

    A file rotated away meanwhile (the follower fell more than the kept count behind) is skipped.
    """
    for after in range(reading + 1, rotations):
        try:
            return after, rotated_path(path, after + 1).open("rb")
        except FileNotFoundError:
            continue
    return rotations, path.open("rb")


def choose_container(pod: dict[str, Any], requested: str | None) -> tuple[str, dict[str, Any]]:
    """The container the request names (or the only one), and its status entry (logs, exec, attach)."""
    spec = pod.get("spec") or {}
    app = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    name = pod["metadata"]["name"]
    if requested is None:
        if len(app) != 1:
            choices = f"a container name must be specified for pod {name}, choose one of: [{' '.join(app)}]"
            if init:
                choices += f" or one of the init containers: [{' '.join(init)}]"
            raise BadRequest(choices)
        requested = app[0]
    if requested not in app and requested not in init:
        raise BadRequest(f"container {requested} is not valid for pod {name}")
    status = pod.get("status") or {}
    statuses = (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
    entry: dict[str, Any] = next((s for s in statuses if s.get("name") == requested), {})
    return requested, entry


def _instance_log(pod_dir: Path, pod: dict[str, Any], chosen: tuple[str, dict[str, Any]], previous: bool) -> Path:
    """Which instance's log answers the request, with upstream's errors when there is none."""
    container, entry = chosen
    name = pod["metadata"]["name"]
    state, last = entry.get("state") or {}, (entry.get("lastState") or {}).get("terminated") or {}
    if previous:
        if not last.get("containerID"):
            raise BadRequest(f'previous terminated container "{container}" in pod "{name}" not found')
        return log_path(pod_dir, container, last["containerID"])
    current_id = (state.get("terminated") or {}).get("containerID") or entry.get("containerID")
    if ("running" in state or "terminated" in state) and current_id:
        return log_path(pod_dir, container, current_id)
    if last.get("containerID"):  # waiting to restart: the instance that ended last
        return log_path(pod_dir, container, last["containerID"])
    reason = (state.get("waiting") or {}).get("reason", "ContainerCreating")
    raise BadRequest(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
