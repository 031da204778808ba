"""The OPC UA adapter's pure rules: status codes to quality, mapping rules, write coercion,
spec validation."""

from __future__ import annotations

import pytest
from asyncua import ua
from asyncua.ua.status_codes import StatusCodes
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from millnet.connectivity.opcua import OpcUaSpec
from millnet.connectivity.opcua.mapping import (
    data_change_filter,
    overflowed,
    place_by_path,
    place_in_device,
    quality_of,
    status_name,
)
from millnet.connectivity.opcua.security import first_certificate
from millnet.connectivity.opcua.values import coerce
from millnet.model import Quality

names = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=12)


@given(st.integers(0, 2**32 - 1))
def test_quality_follows_the_severity_bits(code: int) -> None:
    expected = {0: Quality.GOOD, 1: Quality.UNCERTAIN, 2: Quality.BAD, 3: Quality.BAD}
    assert quality_of(code) is expected[code >> 30]


def test_named_status_codes() -> None:
    assert quality_of(StatusCodes.Good) is Quality.GOOD
    assert quality_of(StatusCodes.UncertainLastUsableValue) is Quality.UNCERTAIN
    assert quality_of(StatusCodes.UncertainSensorNotAccurate) is Quality.UNCERTAIN
    assert quality_of(StatusCodes.BadCommunicationError) is Quality.BAD
    assert quality_of(StatusCodes.BadNodeIdUnknown) is Quality.BAD
    assert status_name(StatusCodes.BadTypeMismatch) == "BadTypeMismatch"
    assert status_name(StatusCodes.BadTypeMismatch | 0x480) == "BadTypeMismatch"
    assert status_name(0xBFFF0000) == "0xBFFF0000"
    assert overflowed(StatusCodes.Good | 0x480) and not overflowed(StatusCodes.Good)


@given(st.lists(names, min_size=5, max_size=9))
def test_path_rule_places_five_levels_and_more(path: list[str]) -> None:
    placed = place_by_path([f"2:{p}" for p in path])
    assert placed is not None
    assert placed.device == tuple(path[:4])
    assert placed.point == ".".join(path[4:])


@given(st.lists(names, max_size=4))
def test_path_rule_skips_shallow_variables(path: list[str]) -> None:
    assert place_by_path(path) is None


@given(st.lists(names, min_size=1, max_size=5))
def test_device_rule_names_points_by_their_path_below_the_folder(below: list[str]) -> None:
    placed = place_in_device(("S", "A", "L", "D"), below)
    assert placed is not None and placed.point == ".".join(below)
    assert place_in_device(("S", "A", "L", "D"), []) is None


def test_deadband_filters() -> None:
    assert data_change_filter("none", 0.0) is None
    absolute = data_change_filter("absolute", 0.5)
    assert absolute is not None and absolute.DeadbandType == ua.DeadbandType.Absolute
    assert absolute.DeadbandValue == 0.5
    percent = data_change_filter("percent", 2.0)
    assert percent is not None and percent.DeadbandType == ua.DeadbandType.Percent


@given(st.integers(-(2**70), 2**70))
def test_int16_coercion_keeps_the_range(value: int) -> None:
    if -(2**15) <= value < 2**15:
        assert coerce(value, ua.VariantType.Int16) == value
    else:
        with pytest.raises(ValueError, match="outside Int16"):
            coerce(value, ua.VariantType.Int16)


def test_coercion_by_type() -> None:
    assert coerce(47, ua.VariantType.Double) == 47.0
    assert coerce(True, ua.VariantType.Boolean) is True
    assert coerce(1, ua.VariantType.Boolean) is True
    assert coerce(3.0, ua.VariantType.UInt32) == 3
    assert coerce(5, ua.VariantType.String) == "5"
    for value, variant in ((2.5, ua.VariantType.Int32), ("x", ua.VariantType.Double),
                           (2, ua.VariantType.Boolean), (-1, ua.VariantType.Byte),
                           (1e39, ua.VariantType.Float), (1, ua.VariantType.ByteString)):
        with pytest.raises(ValueError):
            coerce(value, variant)


def test_first_certificate_of_a_chain() -> None:
    cert = bytes([0x30, 0x82, 0x00, 0x03, 1, 2, 3])
    assert first_certificate(cert + cert) == cert
    assert first_certificate(b"\x01") == b"\x01"


BASE = {"name": "plc", "endpoint": "opc.tcp://10.0.0.5:4840/"}


@pytest.mark.parametrize(("extra", "where"), [
    ({"endpoint": "http://x"}, "endpoint"),
    ({"security": "sign_encrypt"}, "server_certificate"),
    ({"username": "op"}, "username"),
    ({"nodes": [{"node_id": "ns=2;q=1", "device": "a/b/c/d", "point": "p"}]},
     "nodes.0.node_id"),
    ({"nodes": [{"node_id": "i=1", "device": "a/b/c", "point": "p"}]}, "nodes.0.device"),
    ({"nodes": [{"node_id": "i=1", "device": "a/b/c/d", "point": "p", "deadband": 1}]},
     "deadband"),
    ({"nodes": [{"node_id": "i=1", "device": "a/b/c/d", "point": "p",
                 "deadband_type": "percent", "deadband": 101}]}, "percent"),
    ({"nodes": [{"node_id": "i=1", "device": "a/b/c/d", "point": "p"},
                {"node_id": "i=2", "device": "a/b/c/d", "point": "p"}]}, "nodes[1].point"),
    ({"import_folders": [{"browse_path": "X", "device": "a//c/d"}]},
     "import_folders.0.device"),
    ({"publishing_interval_ms": 0}, "publishing_interval_ms"),
    ({"colour": "red"}, "colour"),
])
def test_spec_errors_name_the_field(extra: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError) as err:
        OpcUaSpec.model_validate({**BASE, **extra})
    assert where in str(err.value)


def test_password_is_never_shown() -> None:
    spec = OpcUaSpec.model_validate({**BASE, "username": "op", "password": "s3cret!"})
    assert "s3cret!" not in repr(spec) and "s3cret!" not in str(spec.model_dump())
    assert spec.password is not None and spec.password.get_secret_value() == "s3cret!"


@given(st.lists(st.tuples(names, names), min_size=1, max_size=6, unique=True))
def test_distinct_points_are_accepted(points: list[tuple[str, str]]) -> None:
    nodes = [{"node_id": f"ns=2;s={d}.{p}", "device": f"S/A/L/{d}", "point": p}
             for d, p in points]
    spec = OpcUaSpec.model_validate({**BASE, "nodes": nodes})
    assert [n.device_path[3] for n in spec.nodes] == [d for d, _ in points]
