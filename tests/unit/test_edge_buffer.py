"""The edge buffer's disk format and policies: frames, torn tails, cursor, when full."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.connectivity.edge.buffer import EdgeBuffer
from millnet.connectivity.edge.records import (
    SeriesName,
    decode_batch,
    encode_batch,
)
from millnet.connectivity.edge.segments import SegmentLog, frame, scan
from millnet.model import DataType, Quality, SampleBatch, TextSample

payloads = st.lists(st.binary(max_size=64), max_size=20)


@given(payloads)
def test_frames_round_trip(records: list[bytes]) -> None:
    data = b"".join(frame(r) for r in records)
    found, good = scan(data)
    assert [data[o:o + n] for o, n in found] == records
    assert good == len(data)


@given(payloads, st.data())
def test_any_truncation_recovers_the_whole_records_before_it(records: list[bytes],
                                                              data: st.DataObject) -> None:
    blob = b"".join(frame(r) for r in records)
    cut = data.draw(st.integers(0, len(blob)))
    found, good = scan(blob[:cut])
    kept = [blob[o:o + n] for o, n in found]
    assert kept == records[:len(kept)]
    ends = [sum(len(frame(r)) for r in records[:i]) for i in range(len(records) + 1)]
    assert good == max(e for e in ends if e <= cut)  # every whole record before the cut


@given(payloads.filter(bool), st.data())
def test_a_flipped_byte_never_yields_garbage(records: list[bytes], data: st.DataObject) -> None:
    blob = bytearray(b"".join(frame(r) for r in records))
    at = data.draw(st.integers(0, len(blob) - 1))
    blob[at] ^= data.draw(st.integers(1, 255))
    found, _ = scan(bytes(blob))
    kept = [bytes(blob[o:o + n]) for o, n in found]
    assert kept == records[:len(kept)]


def _batch(sids: Sequence[int], ts: Sequence[int], values: Sequence[float],
           quality: int = 0) -> SampleBatch:
    return SampleBatch(np.array(sids, np.int32), np.array(ts, np.int64),
                       np.array(values, np.float64), np.full(len(sids), quality, np.uint8))


@given(st.lists(st.tuples(st.integers(0, 2**31 - 1), st.integers(-2**63, 2**63 - 1),
                          st.floats(allow_nan=True), st.sampled_from(list(Quality))),
                max_size=30),
       st.lists(st.tuples(st.integers(0, 2**31 - 1), st.integers(-2**63, 2**63 - 1),
                          st.text(max_size=10), st.sampled_from(list(Quality))), max_size=5),
       st.booleans())
def test_batch_records_round_trip(rows: list[tuple[int, int, float, Quality]],
                                  texts: list[tuple[int, int, str, Quality]], live: bool) -> None:
    batch = SampleBatch(np.array([r[0] for r in rows], np.int32),
                        np.array([r[1] for r in rows], np.int64),
                        np.array([r[2] for r in rows], np.float64),
                        np.array([int(r[3]) for r in rows], np.uint8))
    text = [TextSample(*t) for t in texts]
    back = decode_batch(encode_batch(batch, text, live))
    assert back.live is live
    assert back.text == tuple(text)
    np.testing.assert_array_equal(back.batch.series_id, batch.series_id)
    np.testing.assert_array_equal(back.batch.ts_ns, batch.ts_ns)
    np.testing.assert_array_equal(back.batch.value, batch.value)  # NaN == NaN here
    np.testing.assert_array_equal(back.batch.quality, batch.quality)


def _names(ids: Sequence[int]) -> Iterable[SeriesName]:
    return [SeriesName(i, ("S", "A", "L", f"D{i % 3}"), f"p{i}", DataType.DOUBLE) for i in ids]


def _open(path: Path, **kw: object) -> EdgeBuffer:
    return EdgeBuffer(path, _names, **kw)  # type: ignore[arg-type]


def test_records_and_cursor_survive_reopening(tmp_path: Path) -> None:
    buf = _open(tmp_path, max_bytes=1 << 20)
    for i in range(5):
        buf.write(_batch([1, 2], [i, i], [float(i), -float(i)]))
    buf.delivered([0, 1, 3])  # 3 overtook 2 (a live record ahead of the replay)
    buf.close()
    buf = _open(tmp_path, max_bytes=1 << 20)
    assert buf.cursor == 2
    assert buf.undelivered(0, buf.head, 10) == [2, 4]
    record = buf.read(4)
    assert record is not None and record.batch.value.tolist() == [4.0, -4.0]
    assert set(buf.names) == {1, 2} and buf.names[2].point == "p2"
    assert buf.current[1] == (4, 4.0, Quality.GOOD)


def test_a_torn_tail_is_cut_with_a_warning(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    buf = _open(tmp_path, max_bytes=1 << 20)
    for i in range(3):
        buf.write(_batch([1], [i], [float(i)]))
    buf.close()
    seg = sorted((tmp_path / "log").iterdir())[-1]
    whole = seg.read_bytes()
    seg.write_bytes(whole[:-5])  # a crash in the middle of the last write
    with caplog.at_level(logging.WARNING, "millnet.edge"):
        buf = _open(tmp_path, max_bytes=1 << 20)
    assert "torn or corrupted tail" in caplog.text
    assert buf.head == 2 and buf.status().truncated_bytes > 0
    buf.write(_batch([1], [9], [9.0]))  # appends after the last good record
    buf.close()
    buf = _open(tmp_path, max_bytes=1 << 20)
    values = [r.batch.value.tolist() for r in map(buf.read, range(buf.head)) if r]
    assert values == [[0.0], [1.0], [9.0]]


def test_drop_oldest_counts_exactly_what_it_dropped(tmp_path: Path) -> None:
    buf = _open(tmp_path, max_bytes=64 << 10, when_full="drop_oldest",
                segment_bytes=8 << 10)
    n, per = 60, 100
    for i in range(n):
        buf.write(_batch(range(1, per + 1), [i] * per, [float(i)] * per))
    status = buf.status()
    assert status.dropped_samples > 0
    assert status.bytes <= 64 << 10
    left = buf.undelivered(0, buf.head, 10_000)
    kept = sum(len(r) for r in map(buf.read, left) if r is not None)
    assert kept + status.dropped_samples == n * per  # every sample stored or counted
    assert left == list(range(n - len(left), n))  # the newest are kept, in order


def test_refuse_new_waits_for_delivery_and_loses_nothing(tmp_path: Path) -> None:
    buf = _open(tmp_path, max_bytes=64 << 10, when_full="refuse_new", segment_bytes=8 << 10)
    per = 100
    done = threading.Event()

    def producer() -> None:
        for i in range(60):
            buf.write(_batch(range(1, per + 1), [i] * per, [float(i)] * per))
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    deadline = time.monotonic() + 5
    while not buf.status().full and time.monotonic() < deadline:
        time.sleep(0.01)
    assert buf.status().full and not done.is_set()  # backpressure, not loss
    seen: list[float] = []
    nxt = 0
    while not done.is_set() or buf.undelivered(nxt, buf.head, 1):
        seqs = buf.undelivered(nxt, buf.head, 5)
        for seq in seqs:
            record = buf.read(seq)
            assert record is not None
            seen.append(float(record.batch.value[0]))
        if seqs:
            nxt = seqs[-1] + 1
            buf.delivered(seqs)
        else:
            time.sleep(0.005)
    thread.join(5)
    assert seen == [float(i) for i in range(60)]
    assert buf.status().dropped_samples == 0 and not buf.status().full


def test_a_segment_log_keeps_numbers_across_drops(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, 100)
    seqs = [log.append(bytes([i]) * 60) for i in range(5)]
    assert seqs == list(range(5))
    log.drop_oldest()
    log.drop_oldest()
    assert log.first == 2 and log.read(4) == bytes([4]) * 60
    log.close()
    again = SegmentLog(tmp_path, 100)
    assert (again.first, again.head) == (2, 5)
    assert again.append(b"x") == 5


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 30), st.data())
def test_reopen_after_any_cut_of_the_last_segment(tmp_path_factory: pytest.TempPathFactory,
                                                  n: int, data: st.DataObject) -> None:
    path = tmp_path_factory.mktemp("cut")
    buf = _open(path, max_bytes=1 << 20)
    for i in range(n):
        buf.write(_batch([1], [i], [float(i)]))
    buf.close()
    seg = sorted((path / "log").iterdir())[-1]
    blob = seg.read_bytes()
    seg.write_bytes(blob[:data.draw(st.integers(0, len(blob)))])
    buf = _open(path, max_bytes=1 << 20)
    values = [r.batch.value.tolist()[0] for r in map(buf.read, range(buf.head)) if r]
    assert values == [float(i) for i in range(len(values))]
