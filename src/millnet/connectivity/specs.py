"""How a field source is configured: one ``[[sources]]`` table in the node's TOML, or one JSON
body of ``POST /api/v1/sources``; both are validated by the same models.

Every kind of adapter defines its spec as a subclass of :class:`SourceSpec` with a literal
``kind`` (``"opcua"``, ``"modbus"``...), and the node builds the adapter from it. A spec that
cannot work fails at load with an error naming the entry (``sources[2].registers[7].address``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: A source's name: it appears in metrics labels, logs and API paths.
SOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class SourceSpec(BaseModel):
    """What every source has; subclasses add ``kind: Literal[...]`` and their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SOURCE_NAME)
    enabled: bool = True
