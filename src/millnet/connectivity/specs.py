"""How a field source is configured: one ``[[sources]]`` table in the node's TOML, or one JSON
body of ``POST /api/v1/sources``; both are validated by the same models.

Every kind of adapter defines its spec as a subclass of :class:`SourceSpec` with a literal
``kind`` (``"opcua"``, ``"modbus"``...), and the node builds the adapter from it. A spec that
cannot work fails at load with an error naming the entry (``sources[2].registers[7].address``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from millnet.ingest.binder import DevicePath
from millnet.model.limits import name_problem

#: A source's name: it appears in metrics labels, logs and API paths.
SOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class SourceSpec(BaseModel):
    """What every source has; subclasses add ``kind: Literal[...]`` and their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SOURCE_NAME)
    enabled: bool = True


def parse_device(text: str) -> DevicePath:
    """``"site/area/line/device"`` -> the four-part device path of a source's configuration
    (spaces around the slashes ignored); ValueError naming the level that is not a valid
    name (the registry's rule: non-blank, no control characters, at most 200 characters)."""
    parts = [p.strip() for p in text.split("/")]
    if len(parts) != 4:
        raise ValueError(f"must be site/area/line/device (four parts), got {text[:200]!r}")
    for level, part in zip(("site", "area", "line", "device"), parts, strict=True):
        problem = name_problem(part, allow_slash=False)
        if problem is not None:
            raise ValueError(f"{level} {part[:40]!r} {problem}")
    site, area, line, device = parts
    return site, area, line, device
