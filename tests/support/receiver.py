"""A minimal HTTP/1.1 webhook receiver for tests, on an ephemeral port."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from millnet.connectivity.broker import free_port


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server: answers ``status`` to every POST, after ``hold`` is set
    when there is one; every request goes to ``arrived``."""

    port: int = field(default_factory=free_port)
    status: int = 200
    hold: asyncio.Event | None = None
    arrived: asyncio.Queue[Request] = field(default_factory=asyncio.Queue)
    count: int = 0
    _server: asyncio.Server | None = None
    _clients: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for client in self._clients:
                client.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                lines = head.split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.count += 1
                self.arrived.put_nowait(Request(headers, body, time.monotonic()))
                if self.hold is not None:
                    await self.hold.wait()
                writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?token=abc"
