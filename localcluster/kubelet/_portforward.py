"""`kubectl port-forward`: TCP connections relayed to a port on the pod's address.

Two protocols, as upstream serves them:

* kubectl (1.31 and later) tunnels SPDY through a WebSocket (`SPDY/3.1+portforward.k8s.io`,
  KEP-4006): each forwarded connection is a pair of SPDY streams sharing a `requestID`, an error
  stream and a data stream, both naming the `port`. The server connects to the pod's port, relays
  the data stream, and ends both streams (FIN) when the pod's side closes; a failure to connect is
  written on the error stream, which kubectl prints.
* the kubelet's WebSocket protocol (`v4.channel.k8s.io`, what the official Python client speaks):
  `?ports=8080,9090` opens one connection per port; port i uses channels 2i (data) and 2i+1
  (error), each opened by the port number as two little-endian bytes.

The pod's servers listen on its own loopback address (their 0.0.0.0 and localhost binds land there
through the network shim), so the pod's `localhost:PORT` is `<pod IP>:PORT` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from localcluster.api.errors import ApiError, BadRequest
from localcluster.api.http import status_response
from localcluster.kubelet._channels import PORT_FORWARD_PROTOCOLS, ChannelSocket, ProtocolError
from localcluster.kubelet._spdy import CANCEL, Data, GoAway, Ping, Reset, SpdyCodec, SpdyError, SynStream

if TYPE_CHECKING:
    from localcluster.kubelet._worker import PodWorker

log = logging.getLogger("localcluster.kubelet")

SPDY_TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
_READ_BYTES = 64 * 1024


async def serve_port_forward(websocket: WebSocket, pod: dict[str, Any], worker: PodWorker) -> None:
    """Serve one port-forward WebSocket in whichever protocol the client offers."""
    assert worker.pod_ip is not None
    target = _PodPorts(pod["metadata"]["name"], pod["metadata"]["uid"], worker.pod_ip)
    if SPDY_TUNNEL_PROTOCOL in (websocket.scope.get("subprotocols") or []):
        await websocket.accept(subprotocol=SPDY_TUNNEL_PROTOCOL)
        await _SpdySession(websocket, target).run()
        return
    try:
        ports = _requested_ports(websocket.query_params.getlist("ports"))
        channels = await ChannelSocket.accept(websocket, PORT_FORWARD_PROTOCOLS)
    except (ApiError, ProtocolError) as error:
        await websocket.send_denial_response(status_response(BadRequest(str(error))))
        return
    try:
        await _serve_channels(channels, target, ports)
    finally:
        await channels.close()


@dataclass(frozen=True)
class _PodPorts:
    name: str
    uid: str
    ip: str

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open the pod's port; OSError carries the message kubectl prints."""
        try:
            return await asyncio.open_connection(self.ip, port)
        except OSError as exc:
            raise OSError(
                f"error forwarding port {port} to pod {self.name}, uid {self.uid}: "
                f"dial tcp4 {self.ip}:{port}: connect: {os.strerror(exc.errno).lower() if exc.errno else exc}"
            ) from None


def _requested_ports(values: list[str]) -> list[int]:
    ports = []
    for value in ",".join(values).split(","):
        if not value:
            continue
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise BadRequest(f'invalid port {value[:16]!r}: must be a number from 1 to 65535 ("ports" parameter)')
        ports.append(int(value))
    if not ports:
        raise BadRequest('query parameter "ports" is required: the pod ports to forward, e.g. ?ports=8080')
    return ports


# -- SPDY through the WebSocket (kubectl) ------------------------------------------------------------


@dataclass
class _Forward:
    """One forwarded connection: its SPDY stream pair and the bytes the client sent before the pod answered."""

    port: int
    error_stream: int | None = None
    data_stream: int | None = None
    inbound: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class _SpdySession:
    def __init__(self, websocket: WebSocket, target: _PodPorts) -> None:
        self.websocket = websocket
        self.target = target
        self.codec = SpdyCodec()
        self.forwards: dict[str, _Forward] = {}
        self.by_stream: dict[int, _Forward] = {}
        self.last_stream = 0

    async def send(self, data: bytes) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self.websocket.send_bytes(data)

    async def run(self) -> None:
        try:
            while True:
                try:
                    message = await self.websocket.receive()
                except WebSocketDisconnect:
                    return
                if message["type"] == "websocket.disconnect":
                    return
                for frame in self.codec.receive(message.get("bytes") or b""):
                    if not await self._handle(frame):
                        return
        except SpdyError as exc:
            log.info("port-forward to %s: %s", self.target.name, exc)
        finally:
            tasks = [forward.task for forward in self.forwards.values() if forward.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.websocket.close()

    async def _handle(self, frame: SynStream | Data | Reset | Ping | GoAway) -> bool:
        """Act on one frame; False once the client said it is going away."""
        if isinstance(frame, SynStream):
            await self._open(frame)
        elif isinstance(frame, Data):
            forward = self.by_stream.get(frame.stream_id)
            if forward is not None and frame.stream_id == forward.data_stream:
                if frame.data:
                    forward.inbound.put_nowait(frame.data)
                if frame.fin:
                    forward.inbound.put_nowait(None)
        elif isinstance(frame, Reset):
            forward = self.by_stream.get(frame.stream_id)
            if forward is not None and forward.task is not None:
                forward.task.cancel()
        elif isinstance(frame, Ping):
            await self.send(self.codec.ping(frame.ping_id))
        elif isinstance(frame, GoAway):
            return False
        return True

    async def _open(self, frame: SynStream) -> None:
        headers = frame.headers
        self.last_stream = max(self.last_stream, frame.stream_id)
        kind, port, request = headers.get("streamtype"), headers.get("port", ""), headers.get("requestid", "")
        if kind not in ("error", "data") or not port.isdigit() or not 0 < int(port) < 65536:
            await self.send(self.codec.reset(frame.stream_id, CANCEL))
            return
        await self.send(self.codec.syn_reply(frame.stream_id))
        forward = self.forwards.setdefault(request or str(frame.stream_id), _Forward(int(port)))
        self.by_stream[frame.stream_id] = forward
        if kind == "error":
            forward.error_stream = frame.stream_id
        else:
            forward.data_stream = frame.stream_id
        if forward.error_stream is not None and forward.data_stream is not None and forward.task is None:
            forward.task = asyncio.create_task(self._forward(forward))

    async def _forward(self, forward: _Forward) -> None:
        assert forward.error_stream is not None and forward.data_stream is not None
        try:
            reader, writer = await self.target.connect(forward.port)
        except OSError as exc:
            await self.send(self.codec.data(forward.error_stream, str(exc).encode(), fin=True))
            await self.send(self.codec.data(forward.data_stream, b"", fin=True))
            return
        upload = asyncio.create_task(_drain(forward.inbound, writer))
        try:
            while chunk := await reader.read(_READ_BYTES):
                await self.send(self.codec.data(forward.data_stream, chunk))
            await self.send(self.codec.data(forward.data_stream, b"", fin=True))
            await self.send(self.codec.data(forward.error_stream, b"", fin=True))
        except OSError:
            await self.send(self.codec.reset(forward.data_stream, CANCEL))
        finally:
            upload.cancel()
            await asyncio.gather(upload, return_exceptions=True)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _drain(inbound: asyncio.Queue[bytes | None], writer: asyncio.StreamWriter) -> None:
    """Client bytes to the pod; at the client's FIN, half-close the pod connection."""
    with contextlib.suppress(OSError):
        while (chunk := await inbound.get()) is not None:
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


# -- the kubelet's channel protocol (the official Python client) ---------------------------------------


async def _serve_channels(channels: ChannelSocket, target: _PodPorts, ports: list[int]) -> None:
    inbound: list[asyncio.Queue[bytes | None]] = [asyncio.Queue() for _ in ports]
    for index, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        await channels.send(2 * index, prefix)
        await channels.send(2 * index + 1, prefix)

    async def relay(index: int, port: int) -> None:
        try:
            reader, writer = await target.connect(port)
        except OSError as exc:
            await channels.send(2 * index + 1, str(exc).encode())
            return
        upload = asyncio.create_task(_drain(inbound[index], writer))
        try:
            while chunk := await reader.read(_READ_BYTES):
                await channels.send(2 * index, chunk)
        finally:
            upload.cancel()
            await asyncio.gather(upload, return_exceptions=True)
            writer.close()

    async def receive() -> None:
        with contextlib.suppress(ProtocolError):
            while (message := await channels.receive()) is not None:
                channel, data = message
                if channel % 2 == 0 and channel // 2 < len(ports):
                    inbound[channel // 2].put_nowait(data)

    async def relay_all() -> None:
        await asyncio.gather(*(relay(index, port) for index, port in enumerate(ports)))

    relays = asyncio.create_task(relay_all())
    receiver = asyncio.create_task(receive())
    try:
        await asyncio.wait({receiver, relays}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        receiver.cancel()
        relays.cancel()
        await asyncio.gather(receiver, relays, return_exceptions=True)
