"""Bounds-checked primitives of the Handle wire format (RFC 3652 section 2.1.4).

Everything is big-endian. A UTF8-String and any octet string is a u32 length followed by that
many octets; a list is a u32 count followed by its items. Every length and count read from the
network is checked against the bytes that actually remain before anything is allocated, so a
lying length costs one comparison, never memory.
"""

from __future__ import annotations

import struct

from millnet.errors import ProtocolError

U16 = struct.Struct(">H")
U32 = struct.Struct(">I")

#: Cap on any list (indexes, types, values, references, ...). The remaining-bytes check
#: already bounds memory; the cap bounds the work a single message can ask for.
MAX_COUNT = 1 << 16
#: Handle lists (LIST_HANDLE responses) may legitimately be longer.
MAX_HANDLE_LIST = 1 << 20


def fail(field: str, detail: str) -> ProtocolError:
    return ProtocolError(f"{field}: {detail}")


class Reader:
    """A cursor over ``buf[pos:end]`` that raises ProtocolError naming the field it reads."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def _need(self, n: int, field: str) -> int:
        pos = self.pos
        if self.end - pos < n:
            raise fail(field, f"needs {n} bytes, only {self.end - pos} remain")
        self.pos = pos + n
        return pos

    def u8(self, field: str) -> int:
        return self.buf[self._need(1, field)]

    def u16(self, field: str) -> int:
        return int(U16.unpack_from(self.buf, self._need(2, field))[0])

    def u32(self, field: str) -> int:
        return int(U32.unpack_from(self.buf, self._need(4, field))[0])

    def unpack(self, fmt: struct.Struct, field: str) -> tuple[int, ...]:
        return fmt.unpack_from(self.buf, self._need(fmt.size, field))

    def raw(self, n: int, field: str) -> bytes:
        pos = self._need(n, field)
        return self.buf[pos:pos + n]

    def octets(self, field: str) -> bytes:
        """A u32 length and that many octets."""
        pos = self.pos
        if self.end - pos < 4:
            raise fail(field, f"needs 4 bytes for its length, only {self.end - pos} remain")
        (n,) = U32.unpack_from(self.buf, pos)
        pos += 4
        if n > self.end - pos:
            raise fail(field, f"length {n} exceeds remaining {self.end - pos} bytes")
        self.pos = pos + n
        return self.buf[pos:pos + n]

    def utf8(self, field: str) -> str:
        """A UTF8-String; invalid UTF-8 (including surrogates, overlong forms) is refused."""
        data = self.octets(field)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise fail(field, f"invalid UTF-8 at byte {exc.start}") from None

    def count(self, field: str, min_item_size: int, cap: int = MAX_COUNT) -> int:
        """A list count, refused when above ``cap`` or when the items cannot possibly fit."""
        n = self.u32(field)
        if n > cap:
            raise fail(field, f"count {n} exceeds the limit of {cap}")
        if n * min_item_size > self.end - self.pos:
            raise fail(field, f"count {n} needs at least {n * min_item_size} bytes, "
                              f"only {self.end - self.pos} remain")
        return n

    def u32_list(self, field: str) -> tuple[int, ...]:
        n = self.count(field, 4)
        pos = self.pos
        self.pos = pos + 4 * n
        return struct.unpack_from(f">{n}I", self.buf, pos)

    def utf8_list(self, field: str, cap: int = MAX_COUNT) -> tuple[str, ...]:
        n = self.count(field, 4, cap)
        i = 0
        try:
            items = []
            for i in range(n):  # noqa: B007 - i names the failing item below
                items.append(self.utf8("item"))
            return tuple(items)
        except ProtocolError as exc:
            raise fail(f"{field}[{i}]", str(exc).removeprefix("item: ")) from None

    def rest(self) -> bytes:
        pos, self.pos = self.pos, self.end
        return self.buf[pos:self.end]

    def done(self, field: str) -> None:
        if self.pos != self.end:
            raise fail(field, f"{self.end - self.pos} unexpected trailing bytes")


# Writers append to a bytearray: one buffer per message, no intermediate bytes objects.

def put_u8(buf: bytearray, value: int) -> None:
    buf.append(value)


def put_u16(buf: bytearray, value: int) -> None:
    buf += U16.pack(value)


def put_u32(buf: bytearray, value: int) -> None:
    buf += U32.pack(value)


def put_octets(buf: bytearray, data: bytes) -> None:
    buf += U32.pack(len(data))
    buf += data


def put_utf8(buf: bytearray, text: str) -> None:
    put_octets(buf, text.encode("utf-8"))


def put_u32_list(buf: bytearray, items: tuple[int, ...]) -> None:
    buf += U32.pack(len(items))
    buf += struct.pack(f">{len(items)}I", *items)


def put_utf8_list(buf: bytearray, items: tuple[str, ...]) -> None:
    buf += U32.pack(len(items))
    for item in items:
        put_utf8(buf, item)
