"""Container logs: the CRI line format, PodLogOptions validation, tail/since/timestamps/limit,
container choice with upstream's messages, and follow ending with the container."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from localcluster.api.errors import BadRequest, Invalid
from localcluster.kubelet._logs import (
    LiveLog,
    LogOptions,
    LogService,
    LogWriter,
    log_path,
    render,
    tail,
    termination_message,
)


def pod(containers: list[str], init: list[str] | None = None, statuses: list[dict[str, Any]] | None = None) -> dict:
    return {
        "metadata": {"name": "web", "uid": "u1"},
        "spec": {"containers": [{"name": n} for n in containers], "initContainers": [{"name": n} for n in init or []]},
        "status": {"containerStatuses": statuses or []},
    }


def running(name: str, container_id: str) -> dict[str, Any]:
    return {"name": name, "state": {"running": {}}, "lastState": {}, "containerID": container_id}


async def feed(writer: LogWriter, stream: str, data: bytes) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    await writer.pump(stream, reader)


def write_log(path: Path, *chunks: tuple[str, bytes]) -> LiveLog:
    async def go() -> LiveLog:
        live = LiveLog()
        writer = LogWriter(path, live)
        for stream, data in chunks:
            await feed(writer, stream, data)
        writer.close()
        return live

    return asyncio.run(go())


def test_output_is_stored_as_cri_lines_with_partial_markers(tmp_path: Path) -> None:
    path = tmp_path / "c" / "1.log"
    write_log(path, ("stdout", b"one\ntwo\nno newline"), ("stderr", b"oops\n"))
    lines = path.read_bytes().splitlines()
    assert [line.split(b" ", 1)[1] for line in lines] == [
        b"stdout F one",
        b"stdout F two",
        b"stdout P no newline",
        b"stderr F oops",
    ]
    assert lines[0].split(b" ")[0].endswith(b"Z") and len(lines[0].split(b" ")[0]) == 30
    options = LogOptions()
    assert b"".join(render(path.read_bytes().splitlines(keepends=True), options)) == b"one\ntwo\nno newlineoops\n"


def test_tail_counts_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "1.log"
    write_log(path, ("stdout", b"a\nb\nc"), ("stdout", b"d\n"))
    lines = path.read_bytes().splitlines(keepends=True)
    assert b"".join(render(tail(lines, 1), LogOptions())) == b"cd\n"
    assert b"".join(render(tail(lines, 0), LogOptions())) == b""
    assert b"".join(render(tail(lines, 9), LogOptions())) == b"a\nb\ncd\n"


def test_since_and_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "1.log"
    write_log(path, ("stdout", b"old\n"))
    lines = path.read_bytes().splitlines(keepends=True)
    future = LogOptions(since_ns=time.time_ns() + 10**9)
    assert list(render(lines, future)) == []
    stamped = b"".join(render(lines, LogOptions(timestamps=True)))
    assert stamped.endswith(b"Z old\n") and stamped[:4].isdigit()


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"tailLines": "-1"}, Invalid, "tailLines: Invalid value: -1: must be greater than or equal to 0"),
        ({"sinceSeconds": "0"}, Invalid, "sinceSeconds: Invalid value: 0: must be greater than 0"),
        ({"limitBytes": "0"}, Invalid, "limitBytes: Invalid value: 0: must be greater than 0"),
        ({"sinceSeconds": "5", "sinceTime": "2024-01-01T00:00:00Z"}, Invalid, "at most one of `sinceTime`"),
        ({"tailLines": "ten"}, BadRequest, "invalid tailLines 'ten': must be an integer"),
        ({"follow": "maybe"}, BadRequest, "invalid follow 'maybe': must be true or false"),
        ({"sinceTime": "yesterday"}, BadRequest, "must be RFC 3339"),
    ],
)
def test_bad_options_are_clear_errors(params: dict[str, str], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as raised:
        LogOptions.parse("web", params)
    assert message in str(raised.value)


def test_options_parse() -> None:
    options = LogOptions.parse("web", {"follow": "true", "tailLines": "3", "timestamps": "1", "container": "c"})
    assert (options.follow, options.tail_lines, options.timestamps, options.container) == (True, 3, True, "c")


def test_container_choice_and_waiting_containers(tmp_path: Path) -> None:
    service = LogService(tmp_path)

    def read(target: dict[str, Any], params: dict[str, str]) -> Any:
        return asyncio.run(service.read_logs(target, params))

    with pytest.raises(BadRequest) as several:
        read(pod(["a", "b"], init=["i"]), {})
    assert str(several.value) == (
        "a container name must be specified for pod web, choose one of: [a b] or one of the init containers: [i]"
    )
    with pytest.raises(BadRequest, match="container zz is not valid for pod web"):
        read(pod(["a"]), {"container": "zz"})
    waiting = {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}}
    with pytest.raises(BadRequest, match='container "a" in pod "web" is waiting to start: ContainerCreating'):
        read(pod(["a"], statuses=[waiting]), {})
    with pytest.raises(BadRequest, match='previous terminated container "a" in pod "web" not found'):
        read(pod(["a"], statuses=[running("a", "localcluster://5")]), {"previous": "true"})


def test_a_crash_looping_container_shows_its_last_instance(tmp_path: Path) -> None:
    write_log(log_path(tmp_path / "u1", "a", "localcluster://9"), ("stdout", b"crashed\n"))
    status = {
        "name": "a",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "containerID": "localcluster://9"}},
    }
    service = LogService(tmp_path)
    for params in ({}, {"previous": "true"}):
        response = asyncio.run(service.read_logs(pod(["a"], statuses=[status]), params))
        assert (response.body, response.media_type) == (b"crashed\n", "text/plain")


def test_follow_streams_new_lines_and_ends_with_the_container(tmp_path: Path) -> None:
    async def go() -> list[bytes]:
        live = LiveLog()
        path = log_path(tmp_path / "u1", "a", "localcluster://3")
        writer = LogWriter(path, live)
        try:
            writer.write_line("stdout", b"before", partial=False)
            service = LogService(tmp_path)
            service.live[path] = live
            target = pod(["a"], statuses=[running("a", "localcluster://3")])
            response = await service.read_logs(target, {"follow": "true"})
            stream = aiter(response.body_iterator)
            chunks = [await asyncio.wait_for(anext(stream), 5)]
            writer.write_line("stdout", b"after", partial=False)
            chunks.append(await asyncio.wait_for(anext(stream), 5))
        finally:
            writer.close()
        chunks += [chunk async for chunk in stream]  # ends: the container's log closed
        return [c if isinstance(c, bytes) else c.encode() for c in chunks]

    assert b"".join(asyncio.run(go())) == b"before\nafter\n"


def test_a_limit_cuts_the_output(tmp_path: Path) -> None:
    write_log(log_path(tmp_path / "u1", "a", "localcluster://4"), ("stdout", b"hello world\n"))
    response = asyncio.run(
        LogService(tmp_path).read_logs(pod(["a"], statuses=[running("a", "localcluster://4")]), {"limitBytes": "5"})
    )
    assert response.body == b"hello"


def test_a_failed_containers_message_is_the_end_of_its_output(tmp_path: Path) -> None:
    path = tmp_path / "1.log"
    lines = b"".join(b"line %d\n" % number for number in range(100))
    write_log(path, ("stdout", lines), ("stderr", b"ModuleNotFoundError: No module named 'storefrnt'\n"))
    message = termination_message(path)
    assert message.endswith("line 99\nModuleNotFoundError: No module named 'storefrnt'\n")
    assert message.startswith("line 21\n")  # the last 80 lines
    long_path = tmp_path / "2.log"
    write_log(long_path, ("stdout", b"x" * 5000 + b"\nthe end\n"))
    assert len(termination_message(long_path).encode()) == 2048
    assert termination_message(tmp_path / "missing.log") == ""
