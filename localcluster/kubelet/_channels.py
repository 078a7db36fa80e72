"""Kubernetes' channel protocols over WebSocket, as the apiserver and kubelet speak them.

Every message carries one channel's bytes, its first byte naming the channel (`channel.k8s.io`,
`v4.channel.k8s.io`, `v5.channel.k8s.io`), or, in the base64 variants, a digit character followed
by the base64 of the bytes (text messages). For exec and attach the channels are stdin 0, stdout 1,
stderr 2, the error channel 3 (from v4 on: a JSON `metav1.Status` saying how the command ended)
and resize 4 (JSON `{"Width": w, "Height": h}`). v5 adds the close signal: a message on channel
255 whose one byte names a channel the client has finished writing (stdin's EOF). Port-forward
uses channels in pairs per port (data 2i, error 2i+1), each opened by the port as two bytes,
little-endian. The framing itself is wsproto's, under uvicorn.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect

#: The close signal's channel (v5).
CLOSE_CHANNEL = 255


@dataclass(frozen=True)
class ChannelProtocol:
    name: str
    #: 1 for the unversioned protocol; 4 writes a Status on the error channel; 5 adds the close signal.
    version: int
    base64: bool = False


#: What exec and attach accept, newest first (upstream's kubelet and apiserver speak the same).
REMOTE_COMMAND_PROTOCOLS = (
    ChannelProtocol("v5.channel.k8s.io", 5),
    ChannelProtocol("v4.channel.k8s.io", 4),
    ChannelProtocol("v4.base64.channel.k8s.io", 4, base64=True),
    ChannelProtocol("channel.k8s.io", 1),
    ChannelProtocol("base64.channel.k8s.io", 1, base64=True),
)
#: What WebSocket port-forward accepts (the kubelet's protocol, which the official Python client speaks).
PORT_FORWARD_PROTOCOLS = (
    ChannelProtocol("v4.channel.k8s.io", 4),
    ChannelProtocol("v4.base64.channel.k8s.io", 4, base64=True),
    ChannelProtocol("channel.k8s.io", 1),
    ChannelProtocol("base64.channel.k8s.io", 1, base64=True),
)


class ProtocolError(Exception):
    """The client asked for no protocol this endpoint speaks, or sent a message it cannot read."""


def negotiate(offered: list[str], supported: tuple[ChannelProtocol, ...]) -> ChannelProtocol:
    """The first protocol the client offers that the endpoint speaks (no offer means `channel.k8s.io`)."""
    by_name = {protocol.name: protocol for protocol in supported}
    for name in offered or ["channel.k8s.io"]:
        if name in by_name:
            return by_name[name]
    raise ProtocolError(
        f"requested protocol(s) are not supported: {offered}; supports {[protocol.name for protocol in supported]}"
    )


class ChannelSocket:
    """An accepted WebSocket carrying numbered channels in the negotiated protocol."""

    def __init__(self, websocket: WebSocket, protocol: ChannelProtocol) -> None:
        self.websocket = websocket
        self.protocol = protocol

    @classmethod
    async def accept(cls, websocket: WebSocket, supported: tuple[ChannelProtocol, ...]) -> ChannelSocket:
        """Negotiate a protocol (ProtocolError if none fits) and accept the connection with it."""
        protocol = negotiate(list(websocket.scope.get("subprotocols") or []), supported)
        offered = websocket.scope.get("subprotocols")
        await websocket.accept(subprotocol=protocol.name if offered else None)
        return cls(websocket, protocol)

    async def send(self, channel: int, data: bytes) -> None:
        if self.protocol.base64:
            await self.websocket.send_text(chr(ord("0") + channel) + base64.b64encode(data).decode("ascii"))
        else:
            await self.websocket.send_bytes(bytes([channel]) + data)

    async def receive(self) -> tuple[int, bytes] | None:
        """The next (channel, bytes) from the client; None once it has gone. Empty messages are skipped."""
        while True:
            try:
                message = await self.websocket.receive()
            except WebSocketDisconnect:
                return None
            if message["type"] == "websocket.disconnect":
                return None
            raw: bytes | None = message.get("bytes")
            if raw is None:
                raw = (message.get("text") or "").encode()
            if not raw:
                continue
            return self._decode(raw)

    def _decode(self, raw: bytes) -> tuple[int, bytes]:
        if self.protocol.version >= 5 and raw[0] == CLOSE_CHANNEL:
            if len(raw) != 2:
                raise ProtocolError(f"a close signal names exactly one channel, got {len(raw) - 1} bytes")
            return CLOSE_CHANNEL, raw[1:]
        if not self.protocol.base64:
            return raw[0], raw[1:]
        try:
            return raw[0] - ord("0"), base64.b64decode(raw[1:], validate=True)
        except binascii.Error:
            raise ProtocolError("a base64 channel message that is not base64") from None

    async def close(self, code: int = 1000) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # already closed by the client
            await self.websocket.close(code)
