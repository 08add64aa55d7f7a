"""A WebSocket client written by hand, for what a library client refuses to send: invalid
frames, many frames in one write, and a client that never answers a close."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

TEXT, BINARY, CLOSE, PING = 0x1, 0x2, 0x8, 0x9


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, masked: bool = True
) -> bytes:
    """One frame as a client sends it (masked unless told otherwise); nothing is checked."""
    head = bytearray([(0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0xF)])
    mask_bit = 0x80 if masked else 0
    size = len(payload)
    if size < 126:
        head.append(mask_bit | size)
    elif size < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", size)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", size)
    if not masked:
        return bytes(head) + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + key + body


async def handshake(
    port: int, sock: socket.socket | None = None, path: str = "/ws/dashboard"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a WebSocket on 127.0.0.1:`port` (over `sock` if given, already connected there)."""
    if sock is None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    else:
        reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert response.startswith(b"HTTP/1.1 101"), response
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One frame as the server sends it (unmasked): its opcode and payload."""
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0xF, await reader.readexactly(size)


async def close_code(reader: asyncio.StreamReader) -> int | None:
    """Read until the server's close frame: its code (1005 if it has none); None if the
    connection ended without one."""
    try:
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == CLOSE:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
