"""GB/T 2260 province codes and GB/T 4754 sections: the table is complete, codes validate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millnet.errors import InvalidInput
from millnet.federation.regions import (
    PROVINCES,
    SECTIONS,
    province_of,
    region_code,
    sector_code,
)


def test_the_tables_hold_34_provinces_and_sections_a_to_t() -> None:
    assert len(PROVINCES) == 34 and PROVINCES["32"] == "Jiangsu" and PROVINCES["82"] == "Macao"
    assert "".join(SECTIONS) == "ABCDEFGHIJKLMNOPQRST"


def test_codes_validate_and_reduce() -> None:
    assert region_code("320500") == "320500" and province_of("320500") == "32"
    assert sector_code("c38") == "C" and sector_code("D") == "D"
    for bad in ("99", "3205001", "32a", ""):
        with pytest.raises(InvalidInput, match="region"):
            region_code(bad)
    for bad in ("U", "C3", "manufacturing"):
        with pytest.raises(InvalidInput, match="sector"):
            sector_code(bad)


@given(st.text(max_size=10))
def test_any_text_is_a_province_or_unknown(text: str) -> None:
    assert province_of(text) in {*PROVINCES, "??"}
