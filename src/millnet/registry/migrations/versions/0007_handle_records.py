"""One record per handle: values move from ``handle_values`` rows into ``handles`` columns.

Each handle's values are encoded as RFC 3651 value records (lossless), the public-read ones in
``handles.wire`` (as before) and the others in the new ``handles.hidden`` (see
millnet.identifiers.schema). Existing handles are converted 1000 at a time in the migration's
transaction, then ``handle_values`` is dropped; the downgrade rebuilds it from the records.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

from millnet.identifiers.values import stored_forms, stored_values
from millnet.protocols.handle import HandleValue, ValueReference

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_CHUNK = 1000
_VALUE_COLUMNS = ('handle_id, idx, type, data, ttl_type, ttl, "timestamp", permissions, refs')


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
    refs = tuple(ValueReference(h, i) for h, i in json.loads(row.refs)) if row.refs else ()
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
                refs = (json.dumps([[r.handle, r.index] for r in v.references],
                                   ensure_ascii=False) if v.references else None)
                rows.append({"handle_id": record.id, "idx": v.index, "type": v.type,
                             "data": v.data, "ttl_type": v.ttl_type, "ttl": v.ttl,
                             "timestamp": v.timestamp, "permissions": v.permissions,
                             "refs": refs})
        if rows:
            conn.execute(sa.text(
                f"INSERT INTO handle_values ({_VALUE_COLUMNS}) VALUES (:handle_id, :idx, "
                ":type, :data, :ttl_type, :ttl, :timestamp, :permissions, :refs)"), rows)
    op.drop_column("handles", "hidden")
