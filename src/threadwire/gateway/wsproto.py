"""uvicorn's WebSocket protocol with one addition: writing a frame built once for many.

Through the ASGI `websocket.send`, each subscriber's copy of an event went through
Starlette's and uvicorn's send wrappers and was framed again by `websockets` for that
one connection. A frame the server sends is unmasked, so the bytes of an event's frame
are the same for every subscriber: the hub builds them once (`Wire.frame`) and this
protocol writes them to each socket as they are. It offers that as the ASGI scope
extension `threadwire.frames` (decision 0113); an app served elsewhere (another ASGI
server, a test client) does not find it and sends through ASGI as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State

EXTENSION: Final = "threadwire.frames"
"""The scope extension: `{"write": FrameWrite}`."""

FrameWrite = Callable[[bytes], bool]
"""Write one complete server frame; False when the socket cannot take it now (not open,
closing, or its transport paused by a slow reader), and the caller must use the ASGI
send, which waits for room."""


def text_frame(payload: bytes) -> bytes:
    """The complete unmasked frame of a text message carrying `payload` (UTF-8 JSON)."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


def frame_writer(scope: Mapping[str, Any]) -> FrameWrite | None:
    """The connection's frame writer, when the server offers one."""
    extension = scope.get("extensions", {}).get(EXTENSION)
    if extension is None:
        return None
    write: FrameWrite = extension["write"]
    return write


class FramesProtocol(WebSocketsSansIOProtocol):
    """`websockets-sansio` plus the `threadwire.frames` extension."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The app's task is scheduled, not started: it sees the extension from its start.
        if not self.conn.extensions:  # a negotiated extension (deflate) rewrites frames
            self.scope["extensions"][EXTENSION] = {"write": self.write_frame}

    def write_frame(self, frame: bytes) -> bool:
        """Write `frame` to the socket at once, if the connection is open and writable."""
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
        ):
            return False
        self.transport.write(frame)
        return True
