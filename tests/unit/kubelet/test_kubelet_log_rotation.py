"""Container logs rotate by size and keep a bounded number of files; reading, --tail and follow work across it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from localcluster.kubelet._logs import LiveLog, LogLimits, LogService, LogWriter, log_path, rotated_paths

CONTAINER_ID = "localcluster://7"
#: Each stored line is ~50 bytes (timestamp, stream, marker, text): a 400-byte file holds about 8.
LIMITS = LogLimits(max_bytes=400, max_files=3)


def pod() -> dict[str, Any]:
    status = {"name": "a", "state": {"running": {}}, "lastState": {}, "containerID": CONTAINER_ID}
    return {
        "metadata": {"name": "web", "uid": "u1"},
        "spec": {"containers": [{"name": "a"}]},
        "status": {"containerStatuses": [status]},
    }


def numbered(first: int, last: int) -> list[bytes]:
    return [b"line %03d" % number for number in range(first, last + 1)]


def output(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


async def read(service: LogService, params: dict[str, str]) -> bytes:
    response = await service.read_logs(pod(), params)
    return bytes(response.body)


def test_a_log_rotates_by_size_and_keeps_max_files(tmp_path: Path) -> None:
    path = log_path(tmp_path / "u1", "a", CONTAINER_ID)
    live = LiveLog()
    writer = LogWriter(path, live, LIMITS)
    for line in numbered(1, 60):
        writer.write_line("stdout", line, partial=False)
    writer.close()

    kept = rotated_paths(path)
    assert live.rotations > LIMITS.max_files
    assert [rotation for rotation, _ in kept] == [live.rotations - 1, live.rotations]
    for file in [path, *(file for _, file in kept)]:
        assert file.stat().st_size < LIMITS.max_bytes + 64  # at most one line past the limit
        assert file.read_bytes().endswith(b"\n")  # only whole lines: a rotation never splits one
    assert not list(path.parent.glob(f"{path.name}.1"))  # the oldest went


def test_reading_and_tail_cover_the_kept_files(tmp_path: Path) -> None:
    path = log_path(tmp_path / "u1", "a", CONTAINER_ID)
    writer = LogWriter(path, LiveLog(), LogLimits(max_bytes=400, max_files=10))
    for line in numbered(1, 20):
        writer.write_line("stdout", line, partial=False)
    service = LogService(tmp_path)
    rotations = len(rotated_paths(path))
    # Right after a rotation the current file is empty; the tail still has its lines.
    while path.stat().st_size:
        writer.write_line("stdout", b"filler", partial=False)
    writer.close()

    everything = asyncio.run(read(service, {}))
    tail = asyncio.run(read(service, {"tailLines": "3"}))

    assert rotations >= 2
    assert everything.startswith(output(numbered(1, 20)))
    assert tail.count(b"\n") == 3 and tail.endswith(b"filler\n")


def test_follow_reads_on_across_rotations_without_losing_or_repeating_a_line(tmp_path: Path) -> None:
    async def go() -> bytes:
        path = log_path(tmp_path / "u1", "a", CONTAINER_ID)
        live = LiveLog()
        writer = LogWriter(path, live, LogLimits(max_bytes=400, max_files=50))
        service = LogService(tmp_path)
        service.live[path] = live
        for line in numbered(1, 12):
            writer.write_line("stdout", line, partial=False)
        response = await service.read_logs(pod(), {"follow": "true", "tailLines": "5"})
        stream = aiter(response.body_iterator)
        received = [await asyncio.wait_for(anext(stream), 5)]
        for first in range(13, 100, 9):  # bursts that each rotate the file at least once between reads
            for line in numbered(first, min(first + 8, 99)):
                writer.write_line("stdout", line, partial=False)
            received.append(await asyncio.wait_for(anext(stream), 5))
        writer.close()
        received += [chunk async for chunk in stream]
        assert live.rotations >= 10
        return b"".join(chunk if isinstance(chunk, bytes) else chunk.encode() for chunk in received)

    assert asyncio.run(go()) == output(numbered(8, 99))
