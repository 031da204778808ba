"""The Modbus adapter's pure core: codec round trips, the read planner's rules, the register
map's validation (errors name the entry or the CSV line)."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from millnet.connectivity.modbus import ModbusSpec
from millnet.connectivity.modbus.codec import WIDTH, decode_registers, encode, encode_raw, scaled
from millnet.connectivity.modbus.plan import ADDRESS_SPACE, PlanItem, plan_reads

ORDERS = st.sampled_from(["big", "little"])
INT_TYPES = {"int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
             "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1)}


# -- codec ---------------------------------------------------------------------------------------
@given(st.sampled_from(sorted(WIDTH)), ORDERS, ORDERS, st.data())
def test_registers_round_trip_through_values(reg_type: Any, bo: Any, wo: Any,
                                             data: st.DataObject) -> None:
    """Any registers a device sends decode to a value that encodes back to them (NaN payloads
    aside: their bits are not a value)."""
    words = data.draw(st.lists(st.integers(0, 65535), min_size=WIDTH[reg_type],
                               max_size=WIDTH[reg_type]))
    if reg_type == "bool":
        words = [data.draw(st.sampled_from([0, 1]))]
    raw = decode_registers(words, reg_type, bo, wo)
    if isinstance(raw, float) and math.isnan(raw):
        return
    assert encode_raw(raw, reg_type, bo, wo) == words


@given(st.sampled_from(sorted(INT_TYPES)), ORDERS, ORDERS, st.data())
def test_integers_round_trip(reg_type: Any, bo: Any, wo: Any, data: st.DataObject) -> None:
    low, high = INT_TYPES[reg_type]
    value = data.draw(st.integers(low, high))
    assert decode_registers(encode(value, reg_type, bo, wo), reg_type, bo, wo) == value


@given(ORDERS, ORDERS, st.floats(allow_nan=False, allow_infinity=False, width=32),
       st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip(bo: Any, wo: Any, f32: float, f64: float) -> None:
    assert decode_registers(encode(f32, "float32", bo, wo), "float32", bo, wo) == f32
    assert decode_registers(encode(f64, "float64", bo, wo), "float64", bo, wo) == f64


def test_byte_and_word_order_on_a_known_value() -> None:
    """123456.0 as float32 is 0x47F12000: ABCD, CDAB (word swap), BADC, DCBA."""
    assert encode(123456.0, "float32") == [0x47F1, 0x2000]
    assert encode(123456.0, "float32", word_order="little") == [0x2000, 0x47F1]
    assert encode(123456.0, "float32", byte_order="little") == [0xF147, 0x0020]
    assert encode(123456.0, "float32", "little", "little") == [0x0020, 0xF147]
    assert decode_registers([0xFFFF], "int16") == -1
    assert decode_registers([0x0001, 0x0000], "uint32", word_order="little") == 1
    assert struct.pack(">d", 1.5) == bytes.fromhex("3ff8000000000000")
    assert encode(1.5, "float64", word_order="little") == [0, 0, 0, 0x3FF8]


@given(st.sampled_from(sorted(INT_TYPES)), st.data(),
       st.floats(0.001, 1000, allow_nan=False), st.floats(-1000, 1000, allow_nan=False))
def test_scale_and_offset_are_inverted_on_write(reg_type: Any, data: st.DataObject,
                                                scale: float, offset: float) -> None:
    low, high = INT_TYPES[reg_type]
    raw = data.draw(st.integers(low, high))
    value = scaled(raw, scale, offset)
    assert decode_registers(encode(value, reg_type, scale=scale, offset=offset),
                            reg_type) == raw


def test_values_that_do_not_fit_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="does not fit uint16"):
        encode(70000, "uint16")
    with pytest.raises(ValueError, match="does not fit int16"):
        encode(-40, "int16", scale=0.001)  # raw -40000
    with pytest.raises(ValueError, match="not finite"):
        encode(math.inf, "float32")
    with pytest.raises(ValueError, match="does not fit float32"):
        encode(1e39, "float32")
    with pytest.raises(ValueError, match="not a boolean"):
        encode(2, "bool")


# -- planner -------------------------------------------------------------------------------------
@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[PlanItem], int, int]:
    """Non-overlapping items (widths 1, 2 or 4) with random gaps, and limits."""
    max_count = draw(st.integers(4, 125))
    max_gap = draw(st.integers(0, 10))
    address = draw(st.integers(0, 200))
    items: list[PlanItem] = []
    for key in range(draw(st.integers(0, 60))):
        width = draw(st.sampled_from([1, 2, 4]))
        if address + width > ADDRESS_SPACE:
            break
        items.append(PlanItem(key, address, width))
        address += width + draw(st.one_of(st.just(0), st.integers(0, 15)))
    return draw(st.permutations(items)), max_count, max_gap


def _optimum(items: list[PlanItem], max_count: int, max_gap: int) -> int:
    """Fewest requests by dynamic programming over the sorted items (the reference)."""
    ordered = sorted(items, key=lambda it: it.address)
    best = [0] + [10**9] * len(ordered)
    for j in range(1, len(ordered) + 1):
        for i in range(j, 0, -1):  # ordered[i-1 .. j-1] in one request
            span = ordered[j - 1].address + ordered[j - 1].width - ordered[i - 1].address
            gap_ok = all(ordered[k].address - (ordered[k - 1].address + ordered[k - 1].width)
                         <= max_gap for k in range(i, j))
            if span > max_count or not gap_ok:
                break
            best[j] = min(best[j], best[i - 1] + 1)
    return best[-1]


@given(layouts())
def test_plan_covers_every_item_once_within_the_limits(
        layout: tuple[list[PlanItem], int, int]) -> None:
    items, max_count, max_gap = layout
    plan = plan_reads(items, max_count, max_gap)
    covered = [it.key for req in plan for it in req.items]
    assert sorted(covered) == sorted(it.key for it in items)
    for req in plan:
        assert 1 <= req.count <= max_count
        assert req.start + req.count <= ADDRESS_SPACE
        assert req.start == req.items[0].address
        assert req.start + req.count == max(it.address + it.width for it in req.items)
        for it in req.items:
            assert req.start <= it.address and it.address + it.width <= req.start + req.count
        for a, b in zip(req.items, req.items[1:], strict=False):
            assert b.address - (a.address + a.width) <= max_gap  # no forbidden gap bridged
    assert len(plan) == _optimum(items, max_count, max_gap)


def test_plan_coalesces_and_splits_as_documented() -> None:
    items = [PlanItem(i, a, 2) for i, a in enumerate([0, 2, 4, 10, 200])]
    plan = plan_reads(items, 125, 4)
    assert [(r.start, r.count) for r in plan] == [(0, 12), (200, 2)]
    assert [(r.start, r.count) for r in plan_reads(items, 125, 0)] == [(0, 6), (10, 2),
                                                                       (200, 2)]
    bits = [PlanItem(i, i, 1) for i in range(4500)]
    assert [(r.start, r.count) for r in plan_reads(bits, 2000, 0)] == [
        (0, 2000), (2000, 2000), (4000, 500)]


# -- register map --------------------------------------------------------------------------------
def _reg(**kw: Any) -> dict[str, Any]:
    return {"device": "p/a/l/d", "point": f"p{kw.get('address', 0)}", "table": "holding",
            "address": 0, **kw}


def _spec(registers: list[dict[str, Any]], **kw: Any) -> ModbusSpec:
    return ModbusSpec.model_validate({"name": "m", "host": "10.0.0.5", "registers": registers,
                                      **kw})


def test_a_valid_map_from_toml_and_csv(tmp_path: Path) -> None:
    csv_path = tmp_path / "map.csv"
    csv_path.write_text("device,point,table,address,type,word_order,scale,unit,unit_id\n"
                        "p/a/l/d,flow,input,10,float32,little,,m3/h,\n"
                        "p/a/l/e,level,holding,0,int16,,0.1,m,7\n", encoding="utf-8")
    spec = _spec([_reg(address=0, type="float32"), _reg(table="coil", address=0, point="run")],
                 register_map_csv=str(csv_path))
    assert [r.point for r in spec.register_map] == ["p0", "run", "flow", "level"]
    level = spec.register_map[3]
    assert (level.scale, spec.unit_of(level), spec.unit_of(spec.register_map[2])) == (0.1, 7, 1)
    assert spec.register_map[1].value_type == "bool"


@pytest.mark.parametrize(("registers", "extra", "message"), [
    ([_reg(address=0, type="float32"), _reg(address=1)], {},
     r"registers\[1\]\.address: holding 1 of unit 1 overlaps registers\[0\] \(0\.\.1\)"),
    ([_reg(address=65535, type="uint32")], {}, r"needs 2 registers, beyond the last address"),
    ([_reg(address=65536)], {}, r"registers\.0\.address"),
    ([_reg(poll_group="fast")], {}, r"registers\[0\]\.poll_group: 'fast' is not one of"),
    ([_reg(table="input", writable=True)], {}, r"writable: a input is read-only"),
    ([_reg(table="coil", type="uint16")], {}, r"type: a coil holds one bit"),
    ([_reg(type="int8")], {}, r"registers\.0\.type"),
    ([_reg(scale=0)], {}, r"scale: must not be 0"),
    ([_reg(device="plant/line")], {}, r"site/area/line/device"),
    ([_reg(address=1), _reg(address=5, point="p1")], {},
     r"registers\[1\]\.point: p/a/l/d/p1 is already mapped by registers\[0\]"),
    ([], {"poll_groups": [{"name": "a", "interval_ms": 5}]}, r"interval_ms"),
])
def test_a_map_that_cannot_work_names_the_entry(registers: list[dict[str, Any]],
                                                extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _spec(registers, **extra)


def test_same_address_in_another_unit_or_table_is_fine() -> None:
    spec = _spec([_reg(address=0), _reg(address=0, point="b", unit_id=2),
                  _reg(address=0, point="c", table="input")])
    assert len(spec.register_map) == 3


@pytest.mark.parametrize(("rows", "message"), [
    ("p/a/l/d,x,holding,1,float32\np/a/l/d,y,holding,2,uint16\n",
     r"map\.csv:3: address: holding 2 of unit 1 overlaps map\.csv:2"),
    ("p/a/l/d,x,holding,70000,uint16\n", r"map\.csv:2: address: Input should be less"),
    ("p/a/l/d,x,holding,1,float16\n", r"map\.csv:2: type: "),
    ("p/a/l/d,x,holding,1,uint16,extra\n", r"map\.csv:2: more cells than columns"),
])
def test_csv_errors_name_the_line(tmp_path: Path, rows: str, message: str) -> None:
    path = tmp_path / "map.csv"
    path.write_text("device,point,table,address,type\n" + rows, encoding="utf-8")
    with pytest.raises(ValidationError, match=message):
        _spec([], register_map_csv=str(path))


def test_csv_with_an_unknown_column_or_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "map.csv"
    path.write_text("device,point,table,adress\n", encoding="utf-8")
    with pytest.raises(ValidationError, match=r"map\.csv:1: unknown column\(s\) adress"):
        _spec([], register_map_csv=str(path))
    with pytest.raises(ValidationError, match=r"register_map_csv: cannot read"):
        _spec([], register_map_csv=str(tmp_path / "nope.csv"))
