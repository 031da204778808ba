"""Where an enterprise is and what it does: GB/T 2260 province-level divisions and GB/T 4754
sections, the two axes of the national situation view.

A region code is the six-digit GB/T 2260 administrative code (``320500`` Suzhou); its first two
digits name the province-level division. A sector is the GB/T 4754-2017 section letter (``C``
manufacturing); a longer industry code (``C38``) is reduced to its letter.
"""

from __future__ import annotations

import re
from typing import Final

from millnet.errors import InvalidInput

PROVINCES: Final[dict[str, str]] = {
    "11": "Beijing", "12": "Tianjin", "13": "Hebei", "14": "Shanxi", "15": "Inner Mongolia",
    "21": "Liaoning", "22": "Jilin", "23": "Heilongjiang",
    "31": "Shanghai", "32": "Jiangsu", "33": "Zhejiang", "34": "Anhui", "35": "Fujian",
    "36": "Jiangxi", "37": "Shandong",
    "41": "Henan", "42": "Hubei", "43": "Hunan", "44": "Guangdong", "45": "Guangxi",
    "46": "Hainan",
    "50": "Chongqing", "51": "Sichuan", "52": "Guizhou", "53": "Yunnan", "54": "Tibet",
    "61": "Shaanxi", "62": "Gansu", "63": "Qinghai", "64": "Ningxia", "65": "Xinjiang",
    "71": "Taiwan", "81": "Hong Kong", "82": "Macao",
}

SECTIONS: Final[dict[str, str]] = {
    "A": "Agriculture, forestry, animal husbandry and fishery",
    "B": "Mining",
    "C": "Manufacturing",
    "D": "Electricity, heat, gas and water production and supply",
    "E": "Construction",
    "F": "Wholesale and retail trade",
    "G": "Transport, storage and postal services",
    "H": "Accommodation and catering",
    "I": "Information transmission, software and information technology services",
    "J": "Finance",
    "K": "Real estate",
    "L": "Leasing and business services",
    "M": "Scientific research and technical services",
    "N": "Water conservancy, environment and public facilities management",
    "O": "Resident services, repair and other services",
    "P": "Education",
    "Q": "Health and social work",
    "R": "Culture, sports and entertainment",
    "S": "Public administration, social security and social organizations",
    "T": "International organizations",
}

UNKNOWN: Final = "??"
_REGION = re.compile(r"\d{2}(\d{2}(\d{2})?)?")
_SECTOR = re.compile(r"[A-T](\d{2,4})?")


def region_code(text: str, field: str = "region") -> str:
    """A validated GB/T 2260 code (2, 4 or 6 digits) of a known province; names ``field``."""
    code = text.strip()
    if not _REGION.fullmatch(code) or code[:2] not in PROVINCES:
        raise InvalidInput(f"{text[:16]!r} is not a GB/T 2260 region code", field)
    return code


def province_of(region: str | None) -> str:
    """The two-digit province code of ``region``, or ``??`` when unknown or malformed."""
    if region and len(region) >= 2 and region[:2] in PROVINCES:
        return region[:2]
    return UNKNOWN


def sector_code(text: str, field: str = "sector") -> str:
    """The GB/T 4754 section letter of a section or industry code; names ``field``."""
    code = text.strip().upper()
    if not _SECTOR.fullmatch(code):
        raise InvalidInput(f"{text[:16]!r} is not a GB/T 4754 section or industry code", field)
    return code[0]


def province_name(code: str) -> str:
    return PROVINCES.get(code, "unknown")


def sector_name(code: str) -> str:
    return SECTIONS.get(code, "unknown")
