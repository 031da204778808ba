"""Properties of the pure parts of write-back commands: the value check against a point's
datatype, the confirmation comparison, and the Sparkplug command encoding and confirmations."""

from __future__ import annotations

import asyncio
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millnet.commands import _INT_RANGE, check_value, outcome, same_value
from millnet.connectivity.adapter import WriteResult
from millnet.connectivity.sparkplug_write import BirthMetric, Confirmations, encode_command
from millnet.errors import InvalidInput
from millnet.model import DataType
from millnet.protocols import sparkplug as sp

scalars = st.one_of(st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text())


@given(st.sampled_from(list(DataType)), scalars)
def test_a_value_is_accepted_as_its_type_or_refused_naming_value(
        datatype: DataType, value: bool | int | float | str) -> None:
    try:
        checked = check_value(datatype, value)
    except InvalidInput as exc:
        assert exc.field == "value" and str(exc).startswith("value: ")
        return
    if datatype.is_text:
        assert checked == value
    elif datatype is DataType.BOOLEAN:
        assert checked is value
    elif datatype in _INT_RANGE:
        low, high = _INT_RANGE[datatype]
        assert isinstance(checked, int) and not isinstance(checked, bool)
        assert low <= checked <= high and checked == value
    else:
        assert isinstance(checked, float) and math.isfinite(checked) and checked == value


@given(st.sampled_from([sp.SpDataType.INT8, sp.SpDataType.INT32, sp.SpDataType.UINT16,
                        sp.SpDataType.INT64, sp.SpDataType.DOUBLE, sp.SpDataType.FLOAT,
                        sp.SpDataType.BOOLEAN, sp.SpDataType.STRING]),
       st.integers(-100, 100), st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_a_command_decodes_to_the_value_written(datatype: int, n: int,
                                                alias: int | None) -> None:
    if datatype == sp.SpDataType.UINT16:
        n = abs(n)
    values: dict[int, bool | int | float | str] = {
        sp.SpDataType.BOOLEAN: n % 2 == 0, sp.SpDataType.STRING: str(n),
        sp.SpDataType.DOUBLE: n / 4, sp.SpDataType.FLOAT: n / 4}
    value = values.get(datatype, n)
    metric = BirthMetric("m", alias, datatype, writable=True)
    (m,) = sp.decode_payload(encode_command(metric, value, 1)).metrics
    assert m.name == "m" and m.datatype == datatype and m.HasField("alias") == (alias is not None)
    assert same_value(sp.metric_value(m, datatype), value)


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_a_float32_read_back_confirms_the_decimal_written(value: float) -> None:
    read = struct.unpack("<f", struct.pack("<f", value))[0]
    assert same_value(read, value)
    assert outcome(WriteResult(True, read_back=read), value, 0.1, 5.0)[0] == "confirmed"


def test_outcomes() -> None:
    assert outcome(WriteResult(True, read_back=3), 4, 0.1, 5.0)[0] == "failed"
    assert outcome(WriteResult(True, "read-back failed"), 4, 0.1, 5.0)[0] == "failed"
    assert outcome(WriteResult(False, "IllegalAddress"), 4, 0.1, 5.0) == ("failed",
                                                                          "IllegalAddress")
    assert outcome(WriteResult(False, "no answer"), 4, 5.0, 5.0)[0] == "timeout"


def test_confirmations_resolve_on_the_value_written_only() -> None:
    async def scenario() -> None:
        confirmations = Confirmations()
        metric = BirthMetric("Setpoint", 3, sp.SpDataType.DOUBLE, writable=True)
        target = ("g", "e", "d")
        waiter = confirmations.expect(target, metric, 12.5)
        other = sp.encode_data([(3, sp.SpDataType.DOUBLE, 11.0)], seq=1, timestamp_ms=1)
        confirmations.report(target, other)
        confirmations.report(("g", "e", None), sp.encode_data(
            [(3, sp.SpDataType.DOUBLE, 12.5)], seq=2, timestamp_ms=1))
        confirmations.report(target, b"\xff not protobuf")
        assert not waiter.done.done() and waiter.last_seen == 11.0
        confirmations.report(target, sp.encode_data([(3, sp.SpDataType.DOUBLE, 12.5)], seq=3,
                                                    timestamp_ms=1))
        assert waiter.done.done()
        confirmations.forget(target, waiter)
        assert not confirmations

    asyncio.run(scenario())


def test_check_value_examples() -> None:
    assert check_value(DataType.UINT16, 5.0) == 5
    for datatype, bad in ((DataType.UINT16, -1), (DataType.INT8, 128), (DataType.FLOAT, 1e39),
                          (DataType.DOUBLE, True), (DataType.BYTES, 1), (DataType.TEXT, 1)):
        with pytest.raises(InvalidInput):
            check_value(datatype, bad)
