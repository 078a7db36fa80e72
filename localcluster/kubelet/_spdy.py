"""The part of SPDY/3 that Kubernetes port-forward speaks (the server side), as a sans-I/O codec.

kubectl's port-forward multiplexes its connections over SPDY/3 (moby/spdystream), since 1.31
tunnelled through a WebSocket. No maintained Python SPDY library exists, so this reads and writes
the few frames that protocol uses, from the SPDY/3 draft: SYN_STREAM (a stream opens, with its
headers), SYN_REPLY (accepted), DATA (with FIN: the sender is done), RST_STREAM, PING (echoed),
GOAWAY; SETTINGS and WINDOW_UPDATE are read and ignored (spdystream keeps no flow-control windows).
Header blocks are zlib streams with the protocol's fixed dictionary, one stream per direction.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
#: RST_STREAM status codes used here.
PROTOCOL_ERROR, REFUSED_STREAM, CANCEL = 1, 3, 5
_MAX_FRAME = 1 << 24

# The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1): length-prefixed
# words, then a tail of common values.
_DICTIONARY_WORDS = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(word)) + word.encode() for word in _DICTIONARY_WORDS) + (
    _DICTIONARY_TAIL.encode()
)


class SpdyError(Exception):
    """The peer sent something that is not SPDY/3; the session cannot go on."""


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: dict[str, str]
    fin: bool


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool


@dataclass(frozen=True)
class Reset:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_stream_id: int


Frame = SynStream | Data | Reset | Ping | GoAway


@dataclass
class SpdyCodec:
    """Bytes in, frames out; frames in, bytes out. One per connection (header compression is stateful)."""

    _buffer: bytearray = field(default_factory=bytearray)
    _inflate: zlib._Decompress = field(default_factory=lambda: zlib.decompressobj(zdict=DICTIONARY))
    _deflate: zlib._Compress = field(default_factory=lambda: zlib.compressobj(zdict=DICTIONARY))

    def receive(self, data: bytes) -> Iterator[Frame]:
        """The frames completed by `data` (frames this server has no use for are skipped)."""
        self._buffer += data
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                return
            head, body = bytes(self._buffer[:8]), bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            frame = self._parse(head, body)
            if frame is not None:
                yield frame

    def _parse(self, head: bytes, body: bytes) -> Frame | None:
        flags = head[4]
        if not head[0] & 0x80:
            return Data(int.from_bytes(head[:4], "big") & 0x7FFFFFFF, body, bool(flags & FLAG_FIN))
        version, kind = int.from_bytes(head[:2], "big") & 0x7FFF, int.from_bytes(head[2:4], "big")
        if version != VERSION:
            raise SpdyError(f"SPDY version {version}, not {VERSION}")
        if kind == SYN_STREAM:
            if len(body) < 10:
                raise SpdyError("a SYN_STREAM frame shorter than its fixed fields")
            stream_id = int.from_bytes(body[:4], "big") & 0x7FFFFFFF
            return SynStream(stream_id, self._headers(body[10:]), bool(flags & FLAG_FIN))
        if kind == HEADERS:
            self._headers(body[4:])  # keeps the decompressor in step; no stream here needs more headers
            return None
        if kind in (RST_STREAM, GOAWAY, PING) and len(body) < 4:
            raise SpdyError(f"a control frame of type {kind} shorter than its fixed fields")
        if kind == RST_STREAM:
            return Reset(int.from_bytes(body[:4], "big") & 0x7FFFFFFF, int.from_bytes(body[4:8], "big"))
        if kind == PING:
            return Ping(int.from_bytes(body[:4], "big"))
        if kind == GOAWAY:
            return GoAway(int.from_bytes(body[:4], "big") & 0x7FFFFFFF)
        return None  # SETTINGS, WINDOW_UPDATE, SYN_REPLY (a server opens no streams)

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block) + self._inflate.flush(zlib.Z_SYNC_FLUSH)
        except zlib.error as exc:
            raise SpdyError(f"a header block that does not decompress: {exc}") from None
        headers: dict[str, str] = {}
        try:
            (count,), offset = struct.unpack_from(">I", raw), 4
            for _ in range(count):
                (name_length,) = struct.unpack_from(">I", raw, offset)
                name = raw[offset + 4 : offset + 4 + name_length].decode()
                offset += 4 + name_length
                (value_length,) = struct.unpack_from(">I", raw, offset)
                headers[name.lower()] = raw[offset + 4 : offset + 4 + value_length].decode()
                offset += 4 + value_length
        except (struct.error, UnicodeDecodeError):
            raise SpdyError("a malformed header block") from None
        return headers

    def syn_reply(self, stream_id: int) -> bytes:
        """Accept a stream (with no headers, as Kubernetes' stream handler replies)."""
        block = self._deflate.compress(struct.pack(">I", 0)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return _control(SYN_REPLY, 0, struct.pack(">I", stream_id) + block)

    def data(self, stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
        frames = []
        for start in range(0, max(len(data), 1), _MAX_FRAME - 1):
            piece = data[start : start + _MAX_FRAME - 1]
            last = start + _MAX_FRAME - 1 >= len(data)
            flags = FLAG_FIN if fin and last else 0
            frames.append(struct.pack(">I", stream_id) + bytes([flags]) + len(piece).to_bytes(3, "big") + piece)
        return b"".join(frames)

    def reset(self, stream_id: int, status: int) -> bytes:
        return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return _control(PING, 0, struct.pack(">I", ping_id))

    def go_away(self, last_stream_id: int) -> bytes:
        return _control(GOAWAY, 0, struct.pack(">II", last_stream_id, 0))


def _control(kind: int, flags: int, body: bytes) -> bytes:
    return struct.pack(">HH", 0x8000 | VERSION, kind) + bytes([flags]) + len(body).to_bytes(3, "big") + body
