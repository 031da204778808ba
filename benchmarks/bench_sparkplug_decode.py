"""Sparkplug B micro-benchmark: host decode and edge encode throughput, one thread.

Prints one JSON line. Figures are metrics per second, best of ``--repeat`` runs (the best run
is the one least disturbed by other processes on the machine):

* ``host_receive``: ``SparkplugHost.receive`` of DDATA with 100 Double metrics by alias, samples
  appended into a SampleBuffer that is swapped every 100 messages, as the ingest batching does;
* ``host_receive_mixed``: the same with a plant-like mix (Double, Float, Int32, Int64, Boolean;
  a tenth of the values zero or false, which cost an extra presence check);
* ``protobuf_parse``: ``Payload.FromString`` alone, for reference, and ``protobuf_read``: parse
  plus reading alias, timestamp and value of every metric, the floor of any upb-based decoder;
* ``encode_prebuilt``: ``DataEncoder.encode`` (what the simulator and load publisher use);
* ``encode_generic``: ``encode_data``, building protobuf objects per message.

    .venv/bin/python benchmarks/bench_sparkplug_decode.py [--messages 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable

from google.protobuf.internal import api_implementation

from millnet.bench.versions import versions
from millnet.model import SampleBuffer
from millnet.protocols import sparkplug as sp
from millnet.protocols import sparkplug_b_pb2 as pb
from millnet.protocols.sparkplug import BirthMetric, SpDataType
from millnet.protocols.sparkplug_host import BirthEvent, SparkplugHost

METRICS = 100
T0 = 1_767_225_600_000
GROUP, EDGE, DEVICE = "Bench", "Line1", "Press"
MIXED = [SpDataType.DOUBLE] * 50 + [SpDataType.FLOAT] * 20 + [SpDataType.INT32] * 15 + [
    SpDataType.INT64] * 5 + [SpDataType.BOOLEAN] * 10


def _value(rng: random.Random, datatype: int, zero: bool) -> float | int | bool:
    if datatype == SpDataType.BOOLEAN:
        return not zero
    if datatype in (SpDataType.INT32, SpDataType.INT64):
        return 0 if zero else rng.randint(-100_000, 100_000) or 1
    return 0.0 if zero else rng.uniform(-1000.0, 1000.0) or 1.0


def _messages(types: list[int], count: int, zero_share: float) -> list[bytes]:
    """``count`` DDATA payloads with consecutive seq (starting at 2, after NBIRTH and DBIRTH)."""
    rng = random.Random(7)
    enc = sp.DataEncoder([(i + 1, t) for i, t in enumerate(types)])
    return [enc.encode([_value(rng, t, rng.random() < zero_share) for t in types],
                       seq=(2 + k) & 0xFF, timestamp_ms=T0 + k) for k in range(count)]


def _born_host(types: list[int]) -> SparkplugHost:
    host, out = SparkplugHost("bench"), SampleBuffer()
    node = f"spBv1.0/{GROUP}/%s/{EDGE}"
    births = [
        (node % "NBIRTH", sp.encode_nbirth([], bd_seq=0, timestamp_ms=T0)),
        (node % "DBIRTH" + f"/{DEVICE}", sp.encode_dbirth(
            [BirthMetric(f"m{i}", i + 1, t, 1) for i, t in enumerate(types)],
            seq=1, timestamp_ms=T0)),
    ]
    for topic, payload in births:
        for ev in host.receive(topic, payload, 0, out):
            if isinstance(ev, BirthEvent):
                host.bind(ev.group, ev.edge, ev.device,
                          {s.name: i for i, s in enumerate(ev.specs)}, out)
    return host


def _receive_rate(types: list[int], n: int, zero_share: float) -> float:
    # 256 distinct payloads cycle with seq wrapping exactly, so the session never sees a gap.
    payloads = _messages(types, 256, zero_share)
    host = _born_host(types)
    topic = f"spBv1.0/{GROUP}/DDATA/{EDGE}/{DEVICE}"
    receive = host.receive
    out = SampleBuffer()
    start = time.perf_counter()
    for k in range(n):
        if k % 100 == 0:
            out = SampleBuffer()
        if receive(topic, payloads[k & 0xFF], 0, out):
            raise RuntimeError("unexpected event in the benchmark session")
    elapsed = time.perf_counter() - start
    assert host.rejected.total() == 0
    return n * len(types) / elapsed


def _parse_rate(n: int, *, read: bool) -> float:
    payloads = _messages([SpDataType.DOUBLE] * METRICS, 256, 0.0)
    parse = pb.Payload.FromString
    start = time.perf_counter()
    for k in range(n):
        p = parse(payloads[k & 0xFF])
        if read:
            for m in p.metrics:
                m.alias, m.timestamp, m.double_value  # noqa: B018
    return n * METRICS / (time.perf_counter() - start)


def _encode_rate(n: int, *, prebuilt: bool) -> float:
    rng = random.Random(3)
    values = [rng.uniform(-1000, 1000) for _ in range(METRICS)]
    enc = sp.DataEncoder([(i + 1, SpDataType.DOUBLE) for i in range(METRICS)])
    triples = [(i + 1, int(SpDataType.DOUBLE), v) for i, v in enumerate(values)]
    start = time.perf_counter()
    for k in range(n):
        if prebuilt:
            enc.encode(values, seq=k & 0xFF, timestamp_ms=T0 + k)
        else:
            sp.encode_data(triples, seq=k & 0xFF, timestamp_ms=T0 + k)
    return n * METRICS / (time.perf_counter() - start)


def _best(repeat: int, run: Callable[[], float]) -> int:
    return round(max(run() for _ in range(repeat)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, r = args.messages, args.repeat
    doubles = [int(SpDataType.DOUBLE)] * METRICS
    mixed = [int(t) for t in MIXED]
    result = {
        "benchmark": "sparkplug_decode",
        "metrics_per_message": METRICS,
        "messages": n,
        "host_receive_metrics_per_s": _best(r, lambda: _receive_rate(doubles, n, 0.0)),
        "host_receive_mixed_metrics_per_s": _best(r, lambda: _receive_rate(mixed, n, 0.1)),
        "protobuf_parse_metrics_per_s": _best(r, lambda: _parse_rate(n, read=False)),
        "protobuf_read_metrics_per_s": _best(r, lambda: _parse_rate(n, read=True)),
        "encode_prebuilt_metrics_per_s": _best(r, lambda: _encode_rate(n // 2, prebuilt=True)),
        "encode_generic_metrics_per_s": _best(r, lambda: _encode_rate(n // 4, prebuilt=False)),
        "protobuf_backend": api_implementation.Type(),
        "python": platform.python_version(),
        "versions": versions(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
