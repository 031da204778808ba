"""What an edge buffer record holds, sans-IO: one committed batch of samples, or series names.

A **batch record** is what the pipeline committed in one ``write``: a header
``<B flags><I numeric count><I text count>`` (flag 1: the samples are live, they may move current
values), the numeric columns as little-endian arrays (series id int32, ts int64 ns, value
float64, quality uint8), then each text sample as ``<i series><q ts><B quality><I length>`` and
its UTF-8 bytes.

A **series record** (in the dictionary log, never dropped) tells the uplink what a series id is
called upstream: ``{"id", "device": [site, area, line, device], "point", "datatype"}`` as JSON.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from millnet.model import DataType, Quality, SampleBatch, TextSample

_HEADER = struct.Struct("<BII")
_TEXT = struct.Struct("<iqBI")
_LIVE = 1


class RecordError(ValueError):
    """A payload that is not a record (the frame's checksum matched: a bug or a new format)."""


@dataclass(frozen=True, slots=True)
class BatchRecord:
    batch: SampleBatch
    text: tuple[TextSample, ...]
    live: bool

    def __len__(self) -> int:
        return len(self.batch) + len(self.text)


def encode_batch(batch: SampleBatch, text: tuple[TextSample, ...] | list[TextSample],
                 live: bool) -> bytes:
    n = len(batch)
    parts = [
        _HEADER.pack(_LIVE if live else 0, n, len(text)),
        np.ascontiguousarray(batch.series_id, "<i4").tobytes(),
        np.ascontiguousarray(batch.ts_ns, "<i8").tobytes(),
        np.ascontiguousarray(batch.value, "<f8").tobytes(),
        np.ascontiguousarray(batch.quality, "u1").tobytes(),
    ]
    for t in text:
        raw = t.value.encode("utf-8", "surrogatepass")
        parts.append(_TEXT.pack(t.series_id, t.ts_ns, int(t.quality), len(raw)))
        parts.append(raw)
    return b"".join(parts)


def sample_count(payload: bytes) -> int:
    """How many samples a batch record holds (from its header alone)."""
    if len(payload) < _HEADER.size:
        raise RecordError("record shorter than its header")
    _, n, n_text = _HEADER.unpack_from(payload)
    return int(n + n_text)


def decode_batch(payload: bytes) -> BatchRecord:
    if len(payload) < _HEADER.size:
        raise RecordError("record shorter than its header")
    flags, n, n_text = _HEADER.unpack_from(payload)
    pos = _HEADER.size
    need = pos + n * (4 + 8 + 8 + 1)
    if need > len(payload):
        raise RecordError(f"record of {len(payload)} bytes cannot hold {n} samples")
    buf = memoryview(payload)

    def column(dtype: str, width: int) -> np.ndarray:
        nonlocal pos
        arr = np.frombuffer(buf[pos:pos + n * width], dtype=dtype).astype(dtype[1:])
        pos += n * width
        return arr

    batch = SampleBatch(column("<i4", 4), column("<i8", 8), column("<f8", 8),
                        np.frombuffer(buf[pos:pos + n], dtype=np.uint8).copy())
    pos += n
    text: list[TextSample] = []
    for _ in range(n_text):
        if pos + _TEXT.size > len(payload):
            raise RecordError("text sample header past the end of the record")
        sid, ts, quality, length = _TEXT.unpack_from(payload, pos)
        pos += _TEXT.size
        if pos + length > len(payload):
            raise RecordError("text sample past the end of the record")
        try:
            value = bytes(buf[pos:pos + length]).decode("utf-8", "surrogatepass")
            text.append(TextSample(sid, ts, value, Quality(quality)))
        except (UnicodeDecodeError, ValueError) as exc:
            raise RecordError(f"text sample: {exc}") from None
        pos += length
    if pos != len(payload):
        raise RecordError(f"{len(payload) - pos} bytes after the last sample")
    return BatchRecord(batch, tuple(text), bool(flags & _LIVE))


DevicePath = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class SeriesName:
    """What a series id is called: the device that owns it, the point's name and type."""

    series_id: int
    device: DevicePath
    point: str
    datatype: DataType


def encode_series(info: SeriesName) -> bytes:
    return json.dumps({"id": info.series_id, "device": list(info.device), "point": info.point,
                       "datatype": str(info.datatype)}, separators=(",", ":")).encode()


def decode_series(payload: bytes) -> SeriesName:
    try:
        doc = json.loads(payload)
        device = tuple(str(p) for p in doc["device"])
        if len(device) != 4:
            raise RecordError("device path needs 4 levels")
        return SeriesName(int(doc["id"]), (device[0], device[1], device[2], device[3]),
                          str(doc["point"]), DataType(doc["datatype"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"series record: {exc}") from None
