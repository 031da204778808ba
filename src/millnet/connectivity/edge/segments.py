"""The edge buffer's disk log: numbered records in segment files, each framed and checksummed.

A segment file is named after the sequence number of its first record (``%020d.seg``) and holds
records back to back, each ``<u32 length><u32 crc32(payload)><payload>``. A record is durable
when :meth:`SegmentLog.append` returns (written and ``fdatasync``'d). Opening the log checks
every frame: a torn or corrupted tail (a crash in the middle of a write, a bad block) is
truncated with a logged warning, so nothing after it is ever read as data and the log goes on
from the last good record. Nothing here knows what a payload means.

Not thread-safe: the owner (:class:`~millnet.connectivity.edge.buffer.EdgeBuffer`) locks.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("millnet.edge")

FRAME = struct.Struct("<II")  # payload length, crc32 of the payload
SUFFIX = ".seg"
MAX_RECORD = 1 << 30


def frame(payload: bytes) -> bytes:
    """One record as written to a segment."""
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def scan(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """The ``(offset, length)`` of every whole, intact record of a segment's bytes, in order,
    and the length of that good prefix (where a torn or corrupted tail starts)."""
    records: list[tuple[int, int]] = []
    pos, end = 0, len(data)
    while pos + FRAME.size <= end:
        length, crc = FRAME.unpack_from(data, pos)
        start = pos + FRAME.size
        if length > MAX_RECORD or start + length > end:
            break
        if zlib.crc32(memoryview(data)[start:start + length]) != crc:
            break
        records.append((start, length))
        pos = start + length
    return records, pos


@dataclass
class Segment:
    first_seq: int
    path: Path
    offsets: list[tuple[int, int]] = field(default_factory=list)
    size: int = 0

    @property
    def end_seq(self) -> int:
        """One past the last record's sequence number."""
        return self.first_seq + len(self.offsets)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentLog:
    """Records numbered from 0 in order of appending, across segment files of about
    ``segment_bytes``; the oldest segments can be deleted whole."""

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.segments: list[Segment] = []
        self.truncated_bytes = 0  # torn or corrupted tail bytes cut at open
        self._fd: int | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self._open()

    # -- opening -------------------------------------------------------------------------------
    def _open(self) -> None:
        names = sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX))
        for path in names:
            try:
                first = int(path.name[: -len(SUFFIX)])
            except ValueError:
                log.warning("edge buffer: ignoring %s (not a segment name)", path)
                continue
            data = path.read_bytes()
            records, good = scan(data)
            if good < len(data):
                log.warning("edge buffer: %s has a torn or corrupted tail at byte %d "
                            "(%d bytes cut, %d intact records kept)", path.name, good,
                            len(data) - good, len(records))
                self.truncated_bytes += len(data) - good
                with path.open("r+b") as f:
                    f.truncate(good)
                    f.flush()
                    os.fsync(f.fileno())
            if self.segments and first != self.segments[-1].end_seq:
                # A gap (a segment lost its tail, a later one survived): renumbering would
                # shift the cursor onto other records, so the later records keep their numbers.
                log.warning("edge buffer: %s starts at %d after a segment ending at %d",
                            path.name, first, self.segments[-1].end_seq)
            self.segments.append(Segment(first, path, records, good))

    # -- writing -------------------------------------------------------------------------------
    @property
    def head(self) -> int:
        """The sequence number the next record gets."""
        return self.segments[-1].end_seq if self.segments else 0

    @property
    def first(self) -> int:
        """The oldest sequence number still stored."""
        return self.segments[0].first_seq if self.segments else 0

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    def append(self, payload: bytes) -> int:
        """Write one record durably; returns its sequence number."""
        if len(payload) > MAX_RECORD:
            raise ValueError(f"record of {len(payload)} bytes is over {MAX_RECORD}")
        seg = self.segments[-1] if self.segments else None
        if seg is None or (seg.size and seg.size + len(payload) > self.segment_bytes):
            seg = self._roll()
        fd = self._writer(seg)
        data = frame(payload)
        written = os.pwrite(fd, data, seg.size)
        if written != len(data):  # a full disk: the short tail is cut at the next open
            raise OSError(f"short write to {seg.path} ({written} of {len(data)} bytes)")
        os.fdatasync(fd)
        seg.offsets.append((seg.size + FRAME.size, len(payload)))
        seg.size += len(data)
        return seg.end_seq - 1

    def _roll(self) -> Segment:
        self._close_fd()
        seg = Segment(self.head, self.directory / f"{self.head:020d}{SUFFIX}")
        seg.path.touch()
        _fsync_dir(self.directory)
        self.segments.append(seg)
        return seg

    def _writer(self, seg: Segment) -> int:
        if self._fd is None:
            self._fd = os.open(seg.path, os.O_WRONLY)
        return self._fd

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- reading and dropping ------------------------------------------------------------------
    def segment_of(self, seq: int) -> Segment | None:
        for seg in self.segments:
            if seg.first_seq <= seq < seg.end_seq:
                return seg
        return None

    def read(self, seq: int) -> bytes:
        """The payload of record ``seq`` (checked again: a bad block raises ``OSError``)."""
        seg = self.segment_of(seq)
        if seg is None:
            raise KeyError(seq)
        offset, length = seg.offsets[seq - seg.first_seq]
        with seg.path.open("rb") as f:
            f.seek(offset - FRAME.size)
            data = f.read(FRAME.size + length)
        records, _ = scan(data)
        if len(records) != 1:
            raise OSError(f"{seg.path}: record {seq} no longer matches its checksum")
        return data[FRAME.size:]

    def drop_oldest(self) -> Segment:
        """Delete the oldest segment (the last one only if it is the only one)."""
        seg = self.segments.pop(0)
        if not self.segments:
            self._close_fd()
            # Keep numbering: an empty successor holds the head.
            self.segments.append(Segment(seg.end_seq, self.directory /
                                         f"{seg.end_seq:020d}{SUFFIX}"))
            self.segments[-1].path.touch()
        seg.path.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        return seg

    def close(self) -> None:
        self._close_fd()
