"""SQL fragments shared by the DuckDB store's queries and maintenance.

Literals are only ever built from ints the store has validated, and from file paths quoted
with :func:`millnet.telemetry.archive.sql_str`; user-supplied ids travel as registered Arrow
tables, never as SQL text.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from millnet.telemetry.archive import sql_str
from millnet.telemetry.batch import NS_PER_US, US_PER_DAY, floor_day_us

EPOCH = dt.date(1970, 1, 1)


def ceil_us(ts_ns: int) -> int:
    return -(-ts_ns // NS_PER_US)


def ts_literal(us: int) -> str:
    """A TIMESTAMP expression for ``us`` microseconds since the epoch."""
    return f"make_timestamp({int(us)}::BIGINT)"


def day_us(day: dt.date) -> int:
    return (day - EPOCH).days * US_PER_DAY


def source(cur: Any, archive_dir: Path, kind: str, ids: npt.NDArray[np.int32], start_us: int,
           end_us: int) -> str:
    """A query over hot rows and archived files of ``kind`` ('samples' or 'text').

    Filters by the ids registered as ``query_ids`` (``ids`` sorted; their bounds let zone maps
    skip row groups) and by ``[start_us, end_us)``. Archive files come from the manifest read
    through ``cur``, so a caller inside a transaction sees hot rows and files of one snapshot.
    """
    lo, hi = int(ids[0]), int(ids[-1])
    pred = (f"series_id BETWEEN {lo} AND {hi} "
            f"AND series_id IN (SELECT series_id FROM query_ids) "
            f"AND ts >= {ts_literal(start_us)} AND ts < {ts_literal(end_us)}")
    table = "samples" if kind == "samples" else "text_samples"
    parts = [f"SELECT series_id, ts, value, quality FROM {table} WHERE {pred}"]
    first_day = EPOCH + dt.timedelta(days=floor_day_us(start_us) // US_PER_DAY)
    last_day = EPOCH + dt.timedelta(days=floor_day_us(end_us - 1) // US_PER_DAY)
    files = [r[0] for r in cur.execute(
        """SELECT path FROM archive_files
           WHERE state = 'done' AND kind = ? AND day BETWEEN ? AND ?
             AND max_series >= ? AND min_series <= ? ORDER BY path""",
        [kind, first_day, last_day, lo, hi]).fetchall()]
    if files:
        paths = ", ".join(sql_str(str(archive_dir / f)) for f in files)
        parts.append(f"SELECT series_id, ts, value, quality FROM read_parquet([{paths}], "
                     f"hive_partitioning = false) WHERE {pred}")
    return " UNION ALL ".join(parts)
