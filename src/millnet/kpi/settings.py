"""The ``[kpi]`` section: shifts, planned times and the points KPIs are computed from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class KpiSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
