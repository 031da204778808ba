"""The edge node's store: the pipeline commits batches into a disk log the uplink drains.

:class:`EdgeBuffer` takes the place of the telemetry store in an edge node's
:class:`~millnet.ingest.pipeline.IngestPipeline`: ``write`` appends the batch as one record and
fsyncs it before returning, so everything the pipeline acknowledges survives ``kill -9``. The
uplink reads records by sequence number and reports what the broker acknowledged with
:meth:`EdgeBuffer.delivered`; that cursor (the first undelivered record, plus the records
delivered beyond it, since live data overtake the replay) is persisted and fsynced too.

Bounded by ``max_bytes``. When full, fully delivered segments go first; then the policy decides:

* ``drop_oldest``: the oldest segment is deleted whole and its undelivered samples are counted
  (:attr:`BufferStatus.dropped_samples`, logged as a warning): a loss, but a reported one;
* ``refuse_new``: ``write`` waits (in the pipeline's writer thread) until the uplink delivers,
  so the pipeline's queue fills and the adapters stop polling: backpressure, no loss.

Series names (device path, point, datatype) are asked of ``describe`` the first time an id is
written and kept in a dictionary log of their own (never dropped), so a replay after a restart
knows what to call every sample.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from millnet.connectivity.edge.records import (
    BatchRecord,
    SeriesName,
    decode_batch,
    decode_series,
    encode_batch,
    encode_series,
    sample_count,
)
from millnet.connectivity.edge.segments import FRAME, SegmentLog
from millnet.errors import InvalidInput, StorageError
from millnet.model import Quality, SampleBatch, TextSample
from millnet.telemetry.base import ArchiveResult, Bucket, LastValue, SamplePoint, StoreStats

log = logging.getLogger("millnet.edge")

WhenFull = Literal["drop_oldest", "refuse_new"]
Describe = Callable[[Sequence[int]], Iterable[SeriesName]]
Current = tuple[int, float | str, Quality]  # ts_ns, value, quality


@dataclass(frozen=True, slots=True)
class BufferStatus:
    records: int  # undelivered records
    bytes: int  # on disk, delivered records of open segments included
    max_bytes: int
    full: bool  # refuse_new is holding the pipeline back
    dropped_samples: int  # drop_oldest: undelivered samples deleted since the buffer was opened
    dropped_records: int
    truncated_bytes: int  # torn tail cut at open


class EdgeBuffer:
    def __init__(self, directory: Path, describe: Describe, *, max_bytes: int,
                 when_full: WhenFull = "refuse_new", segment_bytes: int | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.when_full = when_full
        seg = segment_bytes or max(64 << 10, min(64 << 20, max_bytes // 8))
        self._log = SegmentLog(directory / "log", seg)
        self._names_log = SegmentLog(directory / "series", 64 << 20)
        self._describe = describe
        self._cond = threading.Condition()
        self._closed = False
        self._full = False
        self.dropped_samples = 0
        self.dropped_records = 0
        self.names: dict[int, SeriesName] = {}
        self.current: dict[int, Current] = {}  # the latest sample of each series written
        # The latest sample of each series the broker acknowledged: what births announce, so
        # that a birth never carries a sample the replay will send again (docs/edge.md).
        self.delivered_current: dict[int, Current] = {}
        self.on_append: Callable[[], None] | None = None
        for seq in range(self._names_log.first, self._names_log.head):
            info = decode_series(self._names_log.read(seq))
            self.names[info.series_id] = info
        self._cursor_path = directory / "cursor.json"
        self.cursor, self._done = self._load_cursor()
        # Delivered records still on disk (the open segment's, mostly) tell what the central
        # node already has; segments dropped before the restart are forgotten (their series
        # are announced null until sampled again).
        for seq in range(self._log.first, self._log.head):
            if self._log.segment_of(seq) is not None:
                record = decode_batch(self._log.read(seq))
                self._track_current(record)
                if seq < self.cursor or seq in self._done:
                    self._track_current(record, self.delivered_current)

    # -- the cursor ----------------------------------------------------------------------------
    def _load_cursor(self) -> tuple[int, set[int]]:
        try:
            raw = self._cursor_path.read_bytes()
        except FileNotFoundError:
            return self._log.first, set()
        crc, _, body = raw.partition(b"\n")
        try:
            if int(crc, 16) != zlib.crc32(body):
                raise ValueError("checksum mismatch")
            doc = json.loads(body)
            done = {s for a, b in doc["done"] for s in range(int(a), int(b))}
            return max(int(doc["cursor"]), self._log.first), done
        except (ValueError, KeyError, TypeError) as exc:
            # Sent again rather than lost: the replay starts from the oldest record.
            log.warning("edge buffer: cursor file unreadable (%s); replaying from the oldest "
                        "record", exc)
            return self._log.first, set()

    def _save_cursor(self) -> None:
        ranges: list[list[int]] = []
        for seq in sorted(self._done):
            if ranges and ranges[-1][1] == seq:
                ranges[-1][1] = seq + 1
            else:
                ranges.append([seq, seq + 1])
        body = json.dumps({"cursor": self.cursor, "done": ranges}).encode()
        tmp = self._cursor_path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(b"%08x\n" % zlib.crc32(body) + body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._cursor_path)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def delivered(self, seqs: Iterable[int]) -> None:
        """Records the broker acknowledged: advance the cursor, persist it, free space."""
        seqs = list(seqs)
        with self._cond:
            for seq in seqs:
                if (seq >= self.cursor and seq not in self._done
                        and self._log.segment_of(seq) is not None):
                    self._track_current(decode_batch(self._log.read(seq)),
                                        self.delivered_current)
            self._done.update(seqs)
            head = self._log.head
            while self.cursor < head and (self.cursor in self._done
                                          or self._log.segment_of(self.cursor) is None):
                self._done.discard(self.cursor)
                self.cursor += 1
            self._save_cursor()
            while len(self._log.segments) > 1 and self._log.segments[0].end_seq <= self.cursor:
                self._log.drop_oldest()
            self._cond.notify_all()

    # -- what the uplink reads -----------------------------------------------------------------
    @property
    def head(self) -> int:
        return self._log.head

    def undelivered(self, start: int, stop: int, limit: int) -> list[int]:
        """Up to ``limit`` undelivered sequence numbers in ``[start, stop)``, in order."""
        with self._cond:
            out: list[int] = []
            seq = max(start, self.cursor, self._log.first)
            while seq < stop and len(out) < limit:
                if seq not in self._done and self._log.segment_of(seq) is not None:
                    out.append(seq)
                seq += 1
            return out

    def read(self, seq: int) -> BatchRecord | None:
        """Record ``seq``, or None when it was dropped meanwhile."""
        with self._cond:
            if self._log.segment_of(seq) is None:
                return None
            return decode_batch(self._log.read(seq))

    def status(self) -> BufferStatus:
        with self._cond:
            return BufferStatus(self._log.head - self.cursor - len(self._done), self._log.size,
                                self.max_bytes, self._full, self.dropped_samples,
                                self.dropped_records, self._log.truncated_bytes)

    # -- what the pipeline calls ---------------------------------------------------------------
    def write(self, batch: SampleBatch, text: Sequence[TextSample] = (), *,
              update_last: bool = True) -> None:
        if not len(batch) and not text:
            return
        payload = encode_batch(batch, list(text), update_last)
        if len(payload) + FRAME.size > self.max_bytes:
            raise InvalidInput(f"a batch of {len(payload)} bytes cannot fit in "
                               f"edge.max_buffer_bytes = {self.max_bytes}", "batch")
        ids = np.unique(batch.series_id).tolist() + [t.series_id for t in text]
        with self._cond:
            self._learn(ids)
            self._make_room(len(payload) + FRAME.size)
            try:
                self._log.append(payload)
            except OSError as exc:
                raise StorageError(f"edge buffer append failed: {exc}") from exc
            self._track_current(BatchRecord(batch, tuple(text), update_last))
        if self.on_append is not None:
            self.on_append()

    def mark_stale(self, series_ids: Sequence[int], ts_ns: int) -> None:
        """The source went away: NaN samples with quality STALE, forwarded like any other."""
        n = len(series_ids)
        self.write(SampleBatch(np.asarray(series_ids, np.int32), np.full(n, ts_ns, np.int64),
                               np.full(n, np.nan), np.full(n, int(Quality.STALE), np.uint8)))

    def _learn(self, ids: Iterable[int]) -> None:
        unknown = sorted({i for i in ids if i not in self.names})
        if not unknown:
            return
        for info in self._describe(unknown):
            if info.series_id not in self.names:
                self._names_log.append(encode_series(info))
                self.names[info.series_id] = info
        missing = [i for i in unknown if i not in self.names]
        if missing:
            raise InvalidInput(f"series {missing[:5]} have no name in the registry", "series_id")

    def _make_room(self, need: int) -> None:
        while self._log.size + need > self.max_bytes:
            first = self._log.segments[0]
            if first.end_seq <= self.cursor and first.size:
                self._log.drop_oldest()  # delivered: free to go
                continue
            if self.when_full == "drop_oldest":
                self._drop()
                continue
            if self._closed:
                raise StorageError("edge buffer closed while full")
            if not self._full:
                log.warning("edge buffer full (%d of %d bytes): ingest waits for the uplink",
                            self._log.size, self.max_bytes)
            self._full = True
            self._cond.wait(0.5)
        self._full = False

    def _drop(self) -> None:
        seg = self._log.segments[0]
        lost = lost_records = 0
        for seq in range(max(seg.first_seq, self.cursor), seg.end_seq):
            if seq not in self._done:
                lost += sample_count(self._log.read(seq))
                lost_records += 1
        self._log.drop_oldest()
        self._done.difference_update(range(seg.first_seq, seg.end_seq))
        self.cursor = max(self.cursor, seg.end_seq)
        self._save_cursor()
        self.dropped_samples += lost
        self.dropped_records += lost_records
        log.warning("edge buffer full: dropped the oldest segment, %d undelivered samples "
                    "in %d records (%d dropped in all)", lost, lost_records,
                    self.dropped_samples)

    def _track_current(self, record: BatchRecord,
                       into: dict[int, Current] | None = None) -> None:
        cur = self.current if into is None else into
        b = record.batch
        if len(b):
            # The latest sample of each series: sort by (series, ts), take each run's last.
            order = np.lexsort((b.ts_ns, b.series_id))
            sids = b.series_id[order]
            last = order[np.append(sids[1:] != sids[:-1], True)]
            for sid, ts, value, quality in zip(b.series_id[last].tolist(), b.ts_ns[last].tolist(),
                                               b.value[last].tolist(), b.quality[last].tolist(),
                                               strict=True):
                old = cur.get(sid)
                if old is None or old[0] <= ts:
                    cur[sid] = (ts, value, Quality(quality))
        for t in record.text:
            old = cur.get(t.series_id)
            if old is None or old[0] <= t.ts_ns:
                cur[t.series_id] = (t.ts_ns, t.value, t.quality)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._log.close()
            self._names_log.close()

    # -- the rest of TelemetryStore: an edge node keeps no queryable history --------------------
    def last_values(self, series_ids: Iterable[int]) -> dict[int, LastValue]:
        out: dict[int, LastValue] = {}
        for sid in series_ids:
            cur = self.current.get(sid)
            if cur is not None:
                ts, value, quality = cur
                num = value if isinstance(value, float) and not math.isnan(value) else None
                out[sid] = LastValue(ts // 1000 * 1000, num,
                                     value if isinstance(value, str) else None, quality)
        return out

    def query_range(self, series_ids: Sequence[int], start_ns: int, end_ns: int, *,
                    limit: int = 10_000) -> list[SamplePoint]:
        return []

    def query_buckets(self, series_ids: Sequence[int], start_ns: int, end_ns: int,
                      bucket_ns: int) -> list[Bucket]:
        return []

    def archive_older_than(self, series_ids: Sequence[int], cutoff_ns: int,
                           tenant: str) -> ArchiveResult:
        return ArchiveResult(tenant, (), 0, 0, (), 0)

    def compact(self, before_ns: int) -> int:
        return 0

    def stats(self) -> StoreStats:
        size = self._log.size
        return StoreStats(0, 0, 0, 0, 0, 0, size, size, 0, len(self.current))
