"""The wire formats of exec/attach/port-forward: SPDY/3 frames and header blocks, channel messages,
and the tar options that name a volume's files by their mount path."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest

from localcluster.kubelet._exec import exec_argv, exit_status, tar_options
from localcluster.kubelet._spdy import (
    DICTIONARY,
    FLAG_FIN,
    Data,
    GoAway,
    Ping,
    SpdyCodec,
    SpdyError,
    SynStream,
)
from localcluster.kubelet._volumes import MountTable
from localcluster.kubelet._worker import Launch


def test_the_header_dictionary_is_spdy3s() -> None:
    # draft-mbelshe-httpbis-spdy-00 section 2.6.10.1: 1423 bytes (moby/spdystream's headerDictionary).
    assert len(DICTIONARY) == 1423
    assert hashlib.sha256(DICTIONARY).hexdigest() == "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
    assert DICTIONARY.startswith(b"\x00\x00\x00\x07options") and DICTIONARY.endswith(b"enq=0.")


def _syn_stream(compressor: zlib._Compress, stream_id: int, headers: dict[str, str]) -> bytes:
    block = struct.pack(">I", len(headers))
    for name, value in headers.items():
        block += struct.pack(">I", len(name)) + name.encode() + struct.pack(">I", len(value)) + value.encode()
    compressed = compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)
    body = struct.pack(">IIBB", stream_id, 0, 0, 0) + compressed
    return struct.pack(">HH", 0x8003, 1) + bytes([0]) + len(body).to_bytes(3, "big") + body


def test_a_port_forward_stream_pair_decodes_across_message_boundaries() -> None:
    client = zlib.compressobj(zdict=DICTIONARY)
    wire = _syn_stream(client, 1, {"streamtype": "error", "port": "8080", "requestid": "0"})
    wire += _syn_stream(client, 3, {"streamtype": "data", "port": "8080", "requestid": "0"})
    wire += struct.pack(">I", 3) + bytes([FLAG_FIN]) + (5).to_bytes(3, "big") + b"hello"
    wire += struct.pack(">HH", 0x8003, 6) + bytes([0]) + (4).to_bytes(3, "big") + struct.pack(">I", 7)
    wire += struct.pack(">HH", 0x8003, 7) + bytes([0]) + (8).to_bytes(3, "big") + struct.pack(">II", 3, 0)
    codec = SpdyCodec()
    frames = [frame for cut in range(0, len(wire), 7) for frame in codec.receive(wire[cut : cut + 7])]
    assert frames == [
        SynStream(1, {"streamtype": "error", "port": "8080", "requestid": "0"}, False),
        SynStream(3, {"streamtype": "data", "port": "8080", "requestid": "0"}, False),
        Data(3, b"hello", True),
        Ping(7),
        GoAway(3),
    ]


def test_replies_decode_with_the_clients_decompressor() -> None:
    codec = SpdyCodec()
    client = zlib.decompressobj(zdict=DICTIONARY)
    for stream_id in (1, 3):
        reply = codec.syn_reply(stream_id)
        assert reply[:4] == struct.pack(">HH", 0x8003, 2)
        assert int.from_bytes(reply[5:8], "big") == len(reply) - 8
        assert struct.unpack(">I", reply[8:12]) == (stream_id,)
        assert client.decompress(reply[12:]) == struct.pack(">I", 0)  # no headers
    assert codec.data(3, b"", fin=True) == struct.pack(">I", 3) + bytes([FLAG_FIN, 0, 0, 0])


def test_a_frame_of_another_spdy_version_is_refused() -> None:
    with pytest.raises(SpdyError):
        list(SpdyCodec().receive(struct.pack(">HHI", 0x8002, 1, 0)))


def test_exec_arguments_and_tar_names_follow_the_mounts(tmp_path: Path) -> None:
    volume = tmp_path / "volumes" / "claim"
    volume.mkdir(parents=True)
    mounts = MountTable.link(
        tmp_path / "root", {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}, {"data": volume}
    )
    launch = Launch(["true"], tmp_path / "root", {}, mounts)
    assert exec_argv(launch, ("tar", "cf", "-", "/data/books", "/etc/hosts", "--file=/data/x")) == [
        "tar",
        "cf",
        "-",
        f"{volume}/books",
        "/etc/hosts",
        f"--file={volume}/x",
    ]
    assert tar_options(mounts) == f"'--transform=s|^/\\?{str(volume).lstrip('/')}|data|S'"


def test_a_non_zero_exit_is_reported_as_kubectl_reads_it() -> None:
    status = exit_status(["sh", "-c", "exit 3"], 3)
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
