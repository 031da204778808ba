"""The vectorised threshold evaluation decides exactly what a plain per-sample state machine
decides, however the stream is cut into chunks and however many bindings share a series."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.rules.definitions import parse_rule
from millnet.rules.pointsets import Chunk, ThresholdSet
from millnet.rules.table import Binding, BindingTable, DeviceRef, RuleRef

S = 1_000_000_000
T0 = 1_767_225_600_000_000_000


def reference(samples: list[tuple[int, float]], above: float, deadband: float, on_s: float,
              off_s: float) -> list[tuple[int, bool]]:
    """Per-sample ISA-style threshold with deadband and delays, written plainly."""
    active, since, out = False, None, []
    for ts, v in samples:
        want = (v > above) if not active else not (v <= above - deadband)
        if want == active:
            since = None
            continue
        delay = round((on_s if not active else off_s) * S)
        since = ts if since is None else since
        if ts - since >= delay:
            active, since = want, None
            out.append((ts, active))
    return out


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=60),
       above=st.floats(20, 80), deadband=st.floats(0, 10),
       on_s=st.sampled_from([0.0, 1.0, 3.0]), off_s=st.sampled_from([0.0, 2.0]),
       cuts=st.lists(st.integers(1, 60), max_size=6), copies=st.integers(1, 3))
def test_vectorised_thresholds_match_the_plain_state_machine(
        values: list[float], above: float, deadband: float, on_s: float, off_s: float,
        cuts: list[int], copies: int) -> None:
    rule = parse_rule({"name": "t", "kind": "threshold", "point": "P", "above": above,
                       "deadband": deadband, "on_delay": on_s, "off_delay": off_s,
                       "applies_to": {"asset_type": "x"}})
    ref = RuleRef(1, 1, rule)
    # ``copies`` devices share nothing but the rule; series 7 carries the samples of all,
    # plus an unwatched series 3 interleaved.
    bindings = [Binding(ref, DeviceRef(10 + i, 1, f"D{i}", f"E/D{i}", "x"), "P", above)
                for i in range(copies)]
    table = BindingTable(bindings, [on_s] * copies, [off_s] * copies)
    ts = [T0 + i * S for i in range(len(values))]  # (time 0 means "no pending delay")
    tset = ThresholdSet(table, list(range(copies)), [7] * copies, 8, [above] * copies,
                        [None] * copies, [deadband] * copies)
    bounds = sorted({0, len(values), *(c for c in cuts if c < len(values))})
    for lo, hi in itertools.pairwise(bounds):
        series = np.array([7, 3] * (hi - lo), dtype=np.int64)
        stamps = np.repeat(np.array(ts[lo:hi], dtype=np.int64), 2)
        vals = np.repeat(np.array(values[lo:hi]), 2)
        tset.process(Chunk(series, stamps, vals))
    got = [(c.asset_id, c.ts_ns, c.active) for c in table.take_changes()]
    expected = reference(list(zip(ts, values, strict=True)), above, deadband, on_s, off_s)
    want = [(10 + i, t, a) for i in range(copies) for t, a in expected]
    assert sorted(got) == sorted(want)
