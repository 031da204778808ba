"""One record per handle: values move from ``handle_values`` rows into ``handles`` columns.

Each handle's values are encoded as RFC 3651 value records (lossless), the public-read ones in
``handles.wire`` (as before) and the others in the new ``handles.hidden`` (see
millnet.identifiers.core.schema). Existing handles are converted 1000 at a time in the migration's
transaction, then ``handle_values`` is dropped; the downgrade rebuilds it from the records.

The record encoding is frozen here, as ``millnet.identifiers.core.values.stored_forms`` and
``stored_values`` (and the codec under them) wrote and read it on 2026-12-02: the migration
imports nothing from millnet, so a later change of the live code cannot change what it does.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

# No "from __future__ import annotations": Alembic loads this file as a module that is not in
# sys.modules, and dataclasses cannot resolve string annotations of such a module.
import json
import struct
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_CHUNK = 1000
_VALUE_COLUMNS = ('handle_id, idx, type, data, ttl_type, ttl, "timestamp", permissions, refs')

# ----------------------------------------------------------------- the frozen record encoding
# RFC 3652 2.2.3.2 value records, big-endian: index u32, timestamp u32, ttl type u8, ttl u32,
# permissions u8, type (u32 length + UTF-8), data (u32 length + octets), references (u32 count,
# each a u32-length UTF-8 handle and a u32 index). A stored form is a u32 count, then records.
_FIXED = struct.Struct(">IIBIB")
_U32 = struct.Struct(">I")
_PUBLIC_READ = 0x2


@dataclass(frozen=True, slots=True)
class HandleValue:
    """A handle value as this migration reads and writes it."""

    index: int
    type: str
    data: bytes
    ttl_type: int
    ttl: int
    timestamp: int
    permissions: int
    references: tuple[tuple[str, int], ...]


def _write_value(buf: bytearray, v: HandleValue) -> None:
    type_ = v.type.encode("utf-8")
    buf += _FIXED.pack(v.index, v.timestamp, v.ttl_type, v.ttl, v.permissions)
    buf += _U32.pack(len(type_)) + type_
    buf += _U32.pack(len(v.data)) + v.data
    buf += _U32.pack(len(v.references))
    for handle, index in v.references:
        name = handle.encode("utf-8")
        buf += _U32.pack(len(name)) + name + _U32.pack(index)


def stored_forms(values: Iterable[HandleValue]) -> tuple[bytes, bytes | None]:
    """``(public, hidden)``: the public-read values and the others, each in index order; public
    is empty when no value is public, hidden None when every value is."""
    public, hidden = bytearray(4), bytearray(4)
    shown = kept = 0
    for v in sorted(values, key=lambda v: v.index):
        if v.permissions & _PUBLIC_READ:
            _write_value(public, v)
            shown += 1
        else:
            _write_value(hidden, v)
            kept += 1
    _U32.pack_into(public, 0, shown)
    _U32.pack_into(hidden, 0, kept)
    return (bytes(public) if shown else b""), (bytes(hidden) if kept else None)


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> bytes:
        if n > len(self.buf) - self.pos:
            raise ValueError(f"a stored handle record is cut short at byte {self.pos}")
        self.pos += n
        return self.buf[self.pos - n:self.pos]

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def text(self) -> str:
        return self.take(self.u32()).decode("utf-8")


def _read_values(buf: bytes) -> list[HandleValue]:
    r = _Reader(buf)
    values = []
    for _ in range(r.u32()):
        index, timestamp, ttl_type, ttl, permissions = _FIXED.unpack(r.take(_FIXED.size))
        type_ = r.text()
        data = r.take(r.u32())
        refs = tuple((r.text(), r.u32()) for _ in range(r.u32()))
        values.append(HandleValue(index, type_, data, ttl_type, ttl, timestamp, permissions,
                                  refs))
    if r.pos != len(buf):
        raise ValueError(f"{len(buf) - r.pos} unexpected bytes after a stored handle record")
    return values


def stored_values(public: bytes | None, hidden: bytes | None) -> list[HandleValue]:
    """The values of a handle from its two stored forms, in index order."""
    merged = (_read_values(bytes(public)) if public else []) + \
        (_read_values(bytes(hidden)) if hidden else [])
    return sorted(merged, key=lambda v: v.index)


def _id_chunks(conn: sa.Connection) -> Any:
    after = 0
    while True:
        ids = [int(i) for i in conn.execute(
            sa.text("SELECT id FROM handles WHERE id > :after ORDER BY id LIMIT :n"),
            {"after": after, "n": _CHUNK}).scalars()]
        if not ids:
            return
        yield ids
        after = ids[-1]


def _value(row: Any) -> HandleValue:
    refs = tuple((str(h), int(i)) for h, i in json.loads(row.refs)) if row.refs else ()
    return HandleValue(int(row.idx), row.type, bytes(row.data), int(row.ttl_type), int(row.ttl),
                       int(row.timestamp), int(row.permissions), refs)


def upgrade() -> None:
    op.add_column("handles", sa.Column("hidden", sa.LargeBinary, nullable=True))
    conn = op.get_bind()
    for ids in _id_chunks(conn):
        values: dict[int, list[HandleValue]] = defaultdict(list)
        for row in conn.execute(sa.text(
                f"SELECT {_VALUE_COLUMNS} FROM handle_values "
                "WHERE handle_id >= :lo AND handle_id <= :hi ORDER BY handle_id, idx"),
                {"lo": ids[0], "hi": ids[-1]}):
            values[int(row.handle_id)].append(_value(row))
        rows = []
        for handle_id in ids:
            wire, hidden = stored_forms(values.get(handle_id, ()))
            rows.append({"id": handle_id, "wire": wire, "hidden": hidden})
        conn.execute(sa.text("UPDATE handles SET wire = :wire, hidden = :hidden WHERE id = :id"),
                     rows)
    op.drop_table("handle_values")


def downgrade() -> None:
    op.create_table(
        "handle_values",
        sa.Column("handle_id", _ID, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("ttl_type", sa.SmallInteger, nullable=False),
        sa.Column("ttl", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("permissions", sa.SmallInteger, nullable=False),
        sa.Column("refs", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("handle_id", "idx", name="pk_handle_values"),
        sqlite_with_rowid=False,
    )
    conn = op.get_bind()
    for ids in _id_chunks(conn):
        rows = []
        for record in conn.execute(sa.text(
                "SELECT id, wire, hidden FROM handles WHERE id >= :lo AND id <= :hi"),
                {"lo": ids[0], "hi": ids[-1]}):
            for v in stored_values(record.wire, record.hidden):
                refs = (json.dumps([list(r) for r in v.references], ensure_ascii=False)
                        if v.references else None)
                rows.append({"handle_id": record.id, "idx": v.index, "type": v.type,
                             "data": v.data, "ttl_type": v.ttl_type, "ttl": v.ttl,
                             "timestamp": v.timestamp, "permissions": v.permissions,
                             "refs": refs})
        if rows:
            conn.execute(sa.text(
                f"INSERT INTO handle_values ({_VALUE_COLUMNS}) VALUES (:handle_id, :idx, "
                ":type, :data, :ttl_type, :ttl, :timestamp, :permissions, :refs)"), rows)
    op.drop_column("handles", "hidden")
