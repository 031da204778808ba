"""The identifier tables, on the shared metadata of :mod:`millnet.db`: one database, one chain.

``handles`` holds one row per handle in its canonical form (:func:`normalize_handle`: prefix
ASCII upper-cased, suffix as given), so ``88.100.5/PUMP-1`` and ``88.100.5/pump-1`` are two
rows while ``88.100.5/x`` and ``88.100.5/x`` typed with another prefix case are one.
The row is the whole handle: its values are stored in their wire encoding (RFC 3651 value
records, index order), the public-read ones in ``wire`` and the others in ``hidden``
(:func:`millnet.identifiers.core.values.stored_forms`). A plain resolution sends ``wire`` as it is;
creating a handle writes one row (and one log row) instead of one per value, which made batch
registration 1.6 times faster (46,000 to 74,000 handles/s over a million)
and the database 37% smaller than a table of value rows
(migration 0007 converted that table). Values are never searched by their content.

On PostgreSQL the handle column uses the "C" collation, so equality and ordering are byte-wise
as on SQLite and paging by handle gives the same order on both. That order also makes the
handles of one prefix a contiguous range of the unique index (``P/`` <= handle < ``P0``, as '0'
follows '/'), so listing and counting a prefix need no second index, and inserts maintain one.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from millnet.db.schema import UtcDateTime, metadata

#: PostgreSQL refuses B-tree index entries above ~2700 bytes; millnet stores handles up to
#: this many UTF-8 bytes (the codec accepts 4096) so the unique index can hold every one.
MAX_STORED_HANDLE_BYTES = 2048
PREFIX_MAX = 255

HandleText = Text().with_variant(Text(collation="C"), "postgresql")
PrefixText = String(PREFIX_MAX).with_variant(String(PREFIX_MAX, collation="C"), "postgresql")

handles = Table(
    "handles", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("handle", HandleText, nullable=False, unique=True),
    Column("prefix", PrefixText, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The handle's public values as a resolution response carries them (value count, then
    # each value): a plain resolution is one index lookup (identifiers.fastpath). Empty when
    # no value is public.
    Column("wire", LargeBinary, nullable=True),
    # The values without PUBLIC_READ, encoded the same way; NULL when there is none.
    Column("hidden", LargeBinary, nullable=True),
)

#: One row per committed change of a handle, in commit order, written in the same transaction:
#: what a mirror replays (identifiers.replication). It names the handle only; the mirror reads
#: the handle's state when it pulls, so replaying is idempotent and converges.
handle_txns = Table(
    "handle_txns", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("handle", HandleText, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)
