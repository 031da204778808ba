"""Hypothesis: ``update`` never raises on numeric input of the right width, returns one flag
per row, never flags a row with NaN, and never flags while learning."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from millnet.analytics.anomaly.base import load_detector, make_detector
from millnet.errors import InvalidInput

values = st.one_of(st.floats(allow_nan=True, allow_infinity=False, width=64),
                   st.sampled_from([0.0, 1.0, -1.0, np.nan, 1e300, -1e300]))


@st.composite
def batches(draw: st.DrawFn) -> tuple[int, list[np.ndarray]]:
    width = draw(st.integers(1, 5))
    count = draw(st.integers(1, 4))
    return width, [draw(arrays(np.float64, (draw(st.integers(0, 12)), width), elements=values))
                   for _ in range(count)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["robust", "pca", "river"]), data=batches(),
       train=st.integers(2, 10))
def test_update_never_raises_and_keeps_the_shape(
        kind: str, data: tuple[int, list[np.ndarray]], train: int) -> None:
    width, chunks = data
    detector = make_detector(kind, width, train_samples=train)
    for chunk in chunks:
        was_trained = detector.trained
        learned_before = int(detector.describe()["learned"])
        flags = detector.update(chunk)
        assert flags.shape == (chunk.shape[0],) and flags.dtype == np.bool_
        assert not flags[np.isnan(chunk).any(axis=1)].any()
        if not was_trained:
            complete = np.flatnonzero(~np.isnan(chunk).any(axis=1))
            still_learning = complete[: train - learned_before]
            assert not flags[still_learning].any()
        state = detector.describe()
        assert state["kind"] == kind


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200), prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x93NUMPY"]))
def test_loading_arbitrary_bytes_fails_only_with_invalid_input(data: bytes, prefix: bytes) -> None:
    try:
        load_detector(prefix + data)
    except InvalidInput as error:
        assert error.field == "data"
    else:
        raise AssertionError("arbitrary bytes loaded as a detector")
