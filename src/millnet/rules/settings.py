"""The ``[rules]`` section: where rule files are and how often the stream is evaluated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RulesSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
