"""An ASGI app under a real uvicorn (httptools, as the node serves it) in a thread, on an
ephemeral port."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from millnet.serving import embedded_server, listening_socket


class ThreadedServer:
    def __init__(self, app: Any) -> None:
        self.sock = listening_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = embedded_server(app)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            threading.Event().wait(0.01)
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
