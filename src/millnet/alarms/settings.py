"""The ``[alarms]`` section: alarm lifecycle and alarm-flood (EEMUA 191) settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AlarmsSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
