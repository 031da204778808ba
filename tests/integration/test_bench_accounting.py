"""The resolve benchmark's load generators account honestly (found by review): error answers
fail the run, a lost datagram counts as lost and is replaced at once, an answer that comes
after its request was counted lost is not counted again, a connection the server closes
loses its request. Peers here are minimal servers over real sockets, built to misbehave."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest

from millnet.bench.resolve import BenchError, rest_load, udp_load


def _udp_server(reply: Callable[[int, bytes], bytes | None]) -> int:
    """A UDP peer answering each datagram with ``reply(n, request)`` (None: no answer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve() -> None:
        n = 0
        while True:
            data, addr = sock.recvfrom(65_536)
            n += 1
            answer = reply(n, data)
            if answer is not None:
                sock.sendto(answer, addr)

    threading.Thread(target=serve, daemon=True).start()
    return int(sock.getsockname()[1])


def _answer(data: bytes, code: int = 1) -> bytes:
    return data[:24] + code.to_bytes(4, "big") + data[28:]


def test_a_dropped_datagram_is_lost_and_replaced_at_once() -> None:
    port = _udp_server(lambda n, data: None if n == 500 else _answer(data))
    load = udp_load(port, 1000, 1.0, 3, 2)
    assert load.lost == 1 and load.late == 0
    assert load.seconds < 1.0 + 0.7  # no idle wait for everything to go quiet


def test_late_answers_are_not_counted_twice() -> None:
    """Six answers held 0.8 s: their requests count as lost (and are replaced), and the
    answers, when they come, are counted late, not as resolutions."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    held: list[tuple[bytes, tuple[str, int]]] = []

    def release() -> None:
        time.sleep(0.8)
        for answer, addr in held:
            sock.sendto(answer, addr)

    def serve() -> None:
        n = 0
        while True:
            data, addr = sock.recvfrom(65_536)
            n += 1
            if 300 <= n < 306:
                held.append((_answer(data), addr))
                if len(held) == 6:
                    threading.Thread(target=release, daemon=True).start()
                continue
            sock.sendto(_answer(data), addr)

    threading.Thread(target=serve, daemon=True).start()
    load = udp_load(int(sock.getsockname()[1]), 1000, 1.5, 3, 2)
    assert load.lost == 6 and load.late == 6
    assert all(sample < 0.5 for sample in load.samples)


def test_error_answers_fail_the_run() -> None:
    port = _udp_server(lambda n, data: _answer(data, code=100))  # HANDLE_NOT_FOUND
    with pytest.raises(BenchError, match="did not answer SUCCESS"):
        udp_load(port, 1000, 0.3, 3, 1)


def test_a_closed_connection_loses_its_request() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    body = b'{"responseCode":1}'
    response = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    def connection(conn: socket.socket, k: int) -> None:
        served, buf = 0, b""
        while True:
            data = conn.recv(65_536)
            if not data:
                return
            buf += data
            while b"\r\n\r\n" in buf:
                _, buf = buf.split(b"\r\n\r\n", 1)
                served += 1
                if k == 0 and served == 3:
                    conn.close()
                    return
                conn.sendall(response)

    def accept() -> None:
        k = 0
        while True:
            conn, _ = server.accept()
            threading.Thread(target=connection, args=(conn, k), daemon=True).start()
            k += 1

    threading.Thread(target=accept, daemon=True).start()
    load = rest_load(int(server.getsockname()[1]), 1000, 1.0, 4)
    assert load.lost == 1
    assert load.seconds < 1.0 + 1.0  # not the 10 s safety cap
