"""The ``[park]`` section (docs/park.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ParkSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # On a secondary node: it is an industrial park, and keeps its member enterprises'
    # summaries (`GET /api/v1/park/members`, `millnet park`).
    enabled: bool = False
    # On an enterprise (a park's member): send the summary of each shift instance of the last
    # day to the parent this often (0: never). Only what changed since the last round is sent.
    report_every_s: float = Field(default=0.0, ge=0, le=86_400)
    # The point, on every device that has it, whose energy is counted: a power point in kW
    # (integrated over time: the demo factory's "Power/Active"), or with `energy_counter` an
    # energy meter in kWh (its increase).
    energy_point: str = Field(default="Power/Active", min_length=1, max_length=128)
    energy_counter: bool = False
