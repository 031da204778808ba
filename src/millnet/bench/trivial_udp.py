"""A trivial UDP responder: the yardstick of ``millnet bench resolve``.

It answers every datagram with one fixed answer (a real resolution answer, its request id
replaced by the request's), in the same kind of process as the node's UDP workers: Python,
asyncio's datagram protocol on uvloop where installed, ``workers`` processes sharing the port
with SO_REUSEPORT. Loaded by the same generator in the same run, it measures what this machine,
this Python and this generator can do with a datagram at that moment; a node's rate divided by
it is a figure that moves with millnet, not with the machine or its other load.

Run as ``python -m millnet.bench.trivial_udp PORT ANSWER_HEX``.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from typing import cast

from millnet.connectivity.broker import free_port
from millnet.errors import MillnetError
from millnet.identifiers.wire.transport import udp_socket
from millnet.serving import event_loop_factory

_REQUEST_ID = slice(8, 12)


class _Echo(asyncio.DatagramProtocol):
    def __init__(self, answer: bytes) -> None:
        self._head, self._tail = answer[:8], answer[12:]
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._transport is not None and len(data) >= 12:
            self._transport.sendto(b"".join((self._head, data[_REQUEST_ID], self._tail)), addr)


async def serve(port: int, answer: bytes) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Echo(answer), sock=udp_socket("127.0.0.1", port, reuse_port=True))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)  # bound: the parent may start the load
    try:
        await stop.wait()
    finally:
        transport.close()


def main(argv: list[str]) -> None:
    port, answer = int(argv[0]), bytes.fromhex(argv[1])
    factory = event_loop_factory()
    if factory is None:
        asyncio.run(serve(port, answer))
    else:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(port, answer))


class TrivialResponder:
    """``workers`` responder processes on one free port; ``with`` starts and stops them."""

    def __init__(self, answer: bytes, workers: int) -> None:
        self.port = free_port()
        self._procs = [subprocess.Popen(  # noqa: S603 - this module, fixed arguments
            [sys.executable, "-m", "millnet.bench.trivial_udp", str(self.port), answer.hex()],
            stdout=subprocess.PIPE) for _ in range(workers)]

    def __enter__(self) -> TrivialResponder:
        for proc in self._procs:  # every process bound before any load
            assert proc.stdout is not None
            if proc.stdout.readline() != b"ready\n":
                self.__exit__()
                raise MillnetError("a trivial UDP responder did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self._procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            if proc.stdout is not None:
                proc.stdout.close()


if __name__ == "__main__":
    main(sys.argv[1:])
