"""Roll-up aggregates merge in any grouping and order: chunks aggregated apart and merged equal
the aggregate of all samples at once."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from millnet.telemetry.rollups import COLUMNS, aggregate, merge

WIDTH = 60 * 10**9


@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 10 * WIDTH),
                          st.floats(-1e6, 1e6, allow_nan=False)),
                min_size=1, max_size=200, unique_by=lambda r: (r[0], r[1])),
       st.lists(st.integers(0, 200), max_size=6))
def test_merging_chunk_aggregates_equals_aggregating_everything(
        rows: list[tuple[int, int, float]], cuts: list[int]) -> None:
    sid = np.array([r[0] for r in rows], np.int32)
    ts = np.array([r[1] for r in rows], np.int64)
    value = np.array([r[2] for r in rows], np.float64)
    whole = aggregate(sid, ts, value, WIDTH)
    bounds = sorted({0, len(rows), *(min(c, len(rows)) for c in cuts)})
    parts = [aggregate(sid[a:b], ts[a:b], value[a:b], WIDTH)
             for a, b in pairwise(bounds)]
    parts.reverse()  # later chunks first: merging does not depend on order
    merged = merge(*parts)
    for column in COLUMNS:
        if column == "total":
            np.testing.assert_allclose(merged[column], whole[column], rtol=1e-9, atol=1e-6)
        else:
            np.testing.assert_array_equal(merged[column], whole[column])
    assert int(whole["n"].sum()) == len(rows)
