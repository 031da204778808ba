"""SQL fragments shared by the DuckDB store's queries and maintenance.

Literals are only ever built from ints the store has validated, and from file paths quoted
with :func:`sql_str`; user-supplied ids travel as registered Arrow
tables, never as SQL text.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from millnet.telemetry.batch import NS_PER_US, US_PER_DAY, US_PER_MS, floor_day_us

EPOCH = dt.date(1970, 1, 1)


def sql_str(s: str) -> str:
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


# The table of numeric samples, and its timestamp (columns ts_ms, ts_us) as a TIMESTAMP.
NUMERIC = "numeric_samples"
SAMPLES_TS = "make_timestamp(ts_ms * 1000 + ts_us)"
# Its rows with the columns of text_samples and of the archive files.
SAMPLES_COLUMNS = f"series_id, {SAMPLES_TS} AS ts, value, quality"


def ceil_us(ts_ns: int) -> int:
    return -(-ts_ns // NS_PER_US)


def ts_literal(us: int) -> str:
    """A TIMESTAMP expression for ``us`` microseconds since the epoch."""
    return f"make_timestamp({int(us)}::BIGINT)"


def day_us(day: dt.date) -> int:
    return (day - EPOCH).days * US_PER_DAY


def ts_range(table: str, start_us: int | None, end_us: int) -> str:
    """A predicate for rows of ``table`` (or a Parquet archive file: any other name) with
    timestamp in ``[start_us, end_us)`` (no lower bound for ``None``).

    For :data:`NUMERIC` the bounds go on ``ts_ms`` (so zone maps skip row groups), with an exact
    test on the microseconds only when a bound is not a whole millisecond.
    """
    end_us = int(end_us)
    if table != NUMERIC:
        lower = "" if start_us is None else f"ts >= {ts_literal(start_us)} AND "
        return f"{lower}ts < {ts_literal(end_us)}"
    pred = f"ts_ms <= {(end_us - 1) // US_PER_MS}"
    if end_us % US_PER_MS:
        pred += f" AND ts_ms * 1000 + ts_us < {end_us}"
    if start_us is not None:
        pred += f" AND ts_ms >= {int(start_us) // US_PER_MS}"
        if start_us % US_PER_MS:
            pred += f" AND ts_ms * 1000 + ts_us >= {int(start_us)}"
    return pred


def columns(table: str) -> str:
    """``series_id, ts, value, quality`` of ``table`` (samples: ts rebuilt as a TIMESTAMP)."""
    return SAMPLES_COLUMNS if table == NUMERIC else "series_id, ts, value, quality"


def day_expr(table: str) -> str:
    """The UTC day (DATE) of a row of ``table``."""
    return f"CAST({SAMPLES_TS if table == NUMERIC else 'ts'} AS DATE)"


def source(cur: Any, archive_dir: Path, kind: str, ids: npt.NDArray[np.int32], start_us: int,
           end_us: int) -> str:
    """A query over hot rows and archived files of ``kind`` ('samples' or 'text').

    Filters by the ids registered as ``query_ids`` (``ids`` sorted; their bounds let zone maps
    skip row groups) and by ``[start_us, end_us)``. Archive files come from the manifest read
    through ``cur``, so a caller inside a transaction sees hot rows and files of one snapshot.
    """
    lo, hi = int(ids[0]), int(ids[-1])
    pred = (f"series_id BETWEEN {lo} AND {hi} "
            f"AND series_id IN (SELECT series_id FROM query_ids)")
    table = NUMERIC if kind == "samples" else "text_samples"
    parts = [f"SELECT {columns(table)} FROM {table} "
             f"WHERE {pred} AND {ts_range(table, start_us, end_us)}"]
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
                     f"hive_partitioning = false) "
                     f"WHERE {pred} AND {ts_range('parquet', start_us, end_us)}")
    return " UNION ALL ".join(parts)
