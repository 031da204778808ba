"""Where frames come from: capture files (pcap and pcapng, through dpkt) and live interfaces
(a Linux AF_PACKET raw socket, receive only: the probe never sends a packet).

Every frame is handed on as Ethernet: other link types of capture files (raw IP, Linux cooked
capture, BSD loopback) get an Ethernet header with zero addresses.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

import dpkt  # type: ignore[import-untyped]

from millnet.errors import InvalidInput, PermissionDenied, ProtocolError

ETH_P_ALL: Final = 0x0003
PACKET_OUTGOING: Final = 4
PCAPNG_MAGIC: Final = b"\x0a\x0d\x0d\x0a"
DLT_NULL, DLT_EN10MB, DLT_RAW, DLT_LOOP, DLT_LINUX_SLL = 0, 1, 101, 108, 113
DLT_RAW_ALIASES: Final = frozenset({DLT_RAW, 12, 14, 228, 229})
_ZERO_MACS: Final = bytes(12)
#: What dpkt raises on a corrupt capture file
CAPTURE_ERRORS: Final = (dpkt.UnpackError, dpkt.NeedData, ValueError, struct.error, EOFError,
                         IndexError, KeyError, TypeError)


def _ethernet(ethertype: int, payload: bytes) -> bytes:
    return _ZERO_MACS + struct.pack(">H", ethertype) + payload


def _ip_ethertype(packet: bytes) -> int:
    return 0x86DD if packet[:1] and packet[0] >> 4 == 6 else 0x0800


def to_ethernet(linktype: int, frame: bytes) -> bytes:
    """The frame as Ethernet; raises InvalidInput for a link type the probe does not read."""
    if linktype == DLT_EN10MB:
        return frame
    if linktype in DLT_RAW_ALIASES:
        return _ethernet(_ip_ethertype(frame), frame)
    if linktype == DLT_LINUX_SLL:
        ethertype = int(struct.unpack_from(">H", frame, 14)[0]) if len(frame) >= 16 else 0
        return _ethernet(ethertype, frame[16:])
    if linktype in (DLT_NULL, DLT_LOOP):
        return _ethernet(_ip_ethertype(frame[4:]), frame[4:])
    raise InvalidInput(f"link type {linktype} is not read (Ethernet, raw IP, Linux cooked "
                       "capture and loopback are)", "capture")


def read_capture(path: Path) -> Iterator[tuple[float, bytes]]:
    """(timestamp, Ethernet frame) of every packet of a pcap or pcapng file.

    A file that is not a capture raises InvalidInput before the first frame; one that is
    corrupt further on raises ProtocolError naming the packet, after the frames before it."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", "read") from exc
    with handle:
        reader, linktype = _open_reader(path, handle)
        index = 0
        try:
            for ts, frame in reader:
                index += 1
                yield float(ts), to_ethernet(linktype, bytes(frame))
        except CAPTURE_ERRORS as exc:
            raise ProtocolError(f"{path}: corrupt after packet {index} ({exc!r:.120})") from exc


def _open_reader(path: Path, handle: BinaryIO) -> tuple[Any, int]:
    magic = handle.read(4)
    handle.seek(0)
    try:
        reader = (dpkt.pcapng.Reader(handle) if magic == PCAPNG_MAGIC
                  else dpkt.pcap.Reader(handle))
        return reader, int(reader.datalink())
    except CAPTURE_ERRORS as exc:
        raise InvalidInput(f"{path} is not a pcap or pcapng file ({exc!r:.120})",
                           "read") from exc


def open_raw_socket(interface: str) -> tuple[socket.socket, bool]:
    """A non-blocking receive-only AF_PACKET socket bound to ``interface``, and whether the
    interface is loopback (where the kernel shows each packet twice)."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except PermissionError as exc:
        raise PermissionDenied("live capture needs CAP_NET_RAW (run as root, or grant it: "
                               "setcap cap_net_raw+ep on the Python interpreter)") from exc
    except (OSError, AttributeError) as exc:
        raise InvalidInput(f"raw packet sockets are not available here: {exc}",
                           "interface") from exc
    try:
        sock.bind((interface, 0))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"no interface {interface!r} ({exc.strerror})", "interface") from exc
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return sock, _is_loopback(interface)


def _is_loopback(interface: str) -> bool:
    try:  # ARPHRD_LOOPBACK
        return Path(f"/sys/class/net/{interface}/type").read_text().strip() == "772"
    except OSError:
        return interface == "lo"


async def live_capture(interface: str, duration: float | None = None,
                       count: int | None = None) -> AsyncIterator[tuple[float, bytes]]:
    """(timestamp, frame) of packets on ``interface`` until ``duration`` seconds or ``count``
    packets, whichever comes first (neither: until cancelled)."""
    sock, loopback = open_raw_socket(interface)
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    seen = 0
    try:
        while count is None or seen < count:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                async with asyncio.timeout(remaining):
                    first = await loop.sock_recvfrom(sock, 65536)
            except TimeoutError:
                return
            for frame, address in [first, *_drain(sock)]:
                if loopback and address[2] == PACKET_OUTGOING:
                    continue  # the incoming copy of the same packet follows
                if count is not None and seen >= count:
                    return
                seen += 1
                yield time.time(), frame
    finally:
        sock.close()


def _drain(sock: socket.socket, limit: int = 256) -> list[tuple[bytes, Any]]:
    """What the socket already holds, without a wait per packet (a busy link delivers many)."""
    frames: list[tuple[bytes, Any]] = []
    while len(frames) < limit:
        try:
            frames.append(sock.recvfrom(65536))
        except BlockingIOError:
            break
    return frames
