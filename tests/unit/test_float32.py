from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from millnet.model.float32 import float32_decimal, float32_decimals

f32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


@given(st.lists(f32, max_size=50))
def test_vectorised_keeps_every_float32(values: list[float]) -> None:
    x = np.array(values, dtype=np.float32).astype(np.float64)
    out = float32_decimals(x)
    both_nan = np.isnan(out) & np.isnan(x)
    assert ((out.astype(np.float32) == x.astype(np.float32)) | both_nan).all()


@given(f32)
def test_scalar_keeps_the_float32_and_agrees_with_vectorised(value: float) -> None:
    decimal = float32_decimal(value)
    if np.isnan(value):
        assert np.isnan(decimal)
        return
    assert np.float32(decimal) == np.float32(value)
    vector = float32_decimals(np.array([value]))[0]
    assert np.float32(vector) == np.float32(value)


def test_widened_float32_becomes_the_decimal_shown() -> None:
    widened = np.array([27.2, 0.1, -5.55, 1234.25, 3.0], dtype=np.float32).astype(np.float64)
    assert float32_decimals(widened).tolist() == [27.2, 0.1, -5.55, 1234.25, 3.0]
    assert [float32_decimal(v) for v in widened] == [27.2, 0.1, -5.55, 1234.25, 3.0]


def test_buffer_freezes_float32_positions_as_decimals_and_keeps_them_when_extended() -> None:
    from millnet.model import SampleBuffer

    widened = float(np.float32(27.2))
    a, b = SampleBuffer(), SampleBuffer()
    a.append(1, 10, widened)
    a.float32_at.append(0)
    a.append(2, 10, widened)  # a double that happens to be float32-representable: untouched
    b.append(3, 20, float(np.float32(0.1)))
    b.float32_at.append(0)
    a.extend(b)
    assert a.freeze().value.tolist() == [27.2, widened, 0.1]
