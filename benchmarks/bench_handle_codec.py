"""Handle native protocol codec micro-benchmark, one thread.

Prints one JSON line. Figures are operations per second, best of ``--repeat`` runs:

* ``decode_request``: ``decode_message`` of a resolution request as the CAICT SDK sends it
  (version 2.3 suggesting 2.10, RD set, one type asked);
* ``encode_response``: ``make_response`` (SHA-256 request digest included) and
  ``encode_message`` of a resolution response with four values (URL, EMAIL, HS_ADMIN and an
  industrial data value);
* ``resolve_cycle``: both, the per-request work of a resolution server minus the lookup;
* ``tcp_framer``: the same requests cut from a stream by ``TcpFramer`` 100 at a time.

    .venv/bin/python benchmarks/bench_handle_codec.py [--requests 50000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

from millnet.bench.versions import versions
from millnet.protocols import handle as h

NOW = 1_767_225_600
HANDLE = "88.100.5/PUMP-2026-000123"
REQUEST = h.encode_message(h.Message(
    h.ResolutionRequest(HANDLE, (), ("URL",)), h.Header(h.OpFlag.RD, 0, 0, NOW + 43200),
    h.Envelope(2, 3, 2, 10, request_id=0x1234)))
VALUES = (
    h.HandleValue(1, "URL", b"https://plant.example.cn/assets/PUMP-2026-000123", timestamp=NOW),
    h.HandleValue(2, "EMAIL", b"ops@plant.example.cn", timestamp=NOW),
    h.HandleValue(100, "HS_ADMIN", h.encode_admin(h.AdminRecord(
        h.ALL_ADMIN_PERMISSIONS, "0.NA/88.100.5", 200)), timestamp=NOW),
    h.HandleValue(3, "88.100.5/TYPE.PRODUCT", b'{"model":"P-200","batch":"2026-03"}',
                  timestamp=NOW),
)


def _decode_rate(n: int) -> float:
    decode = h.decode_message
    start = time.perf_counter()
    for _ in range(n):
        decode(REQUEST)
    return n / (time.perf_counter() - start)


def _encode_rate(n: int) -> float:
    request = h.decode_message(REQUEST)
    encode, respond = h.encode_message, h.make_response
    start = time.perf_counter()
    for _ in range(n):
        encode(respond(request, h.ResolutionResponse(HANDLE, VALUES), now=NOW))
    return n / (time.perf_counter() - start)


def _cycle_rate(n: int) -> float:
    decode, encode, respond = h.decode_message, h.encode_message, h.make_response
    start = time.perf_counter()
    for _ in range(n):
        request = decode(REQUEST)
        encode(respond(request, h.ResolutionResponse(HANDLE, VALUES), now=NOW))
    return n / (time.perf_counter() - start)


def _framer_rate(n: int) -> float:
    chunk = REQUEST * 100
    framer = h.TcpFramer()
    start = time.perf_counter()
    for _ in range(n // 100):
        if len(framer.receive_data(chunk)) != 100:
            raise RuntimeError("framer lost messages")
    return (n // 100) * 100 / (time.perf_counter() - start)


def _best(repeat: int, run: Callable[[], float]) -> int:
    return round(max(run() for _ in range(repeat)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, r = args.requests, args.repeat
    response = h.encode_message(h.make_response(
        h.decode_message(REQUEST), h.ResolutionResponse(HANDLE, VALUES), now=NOW))
    result = {
        "benchmark": "handle_codec",
        "requests": n,
        "request_bytes": len(REQUEST),
        "response_bytes": len(response),
        "decode_request_per_s": _best(r, lambda: _decode_rate(n)),
        "encode_response_per_s": _best(r, lambda: _encode_rate(n)),
        "resolve_cycle_per_s": _best(r, lambda: _cycle_rate(n)),
        "tcp_framer_requests_per_s": _best(r, lambda: _framer_rate(n)),
        "python": platform.python_version(),
        "versions": versions(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
