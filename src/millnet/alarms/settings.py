"""The ``[alarms]`` section: alarm lifecycle and alarm-flood (EEMUA 191) settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: The longest shelving the API's document allows; ``max_shelve_s`` may be lower.
SHELVE_LIMIT_S = 30 * 86_400


class AlarmsSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Condition changes waiting for the writer; beyond this they are counted and logged, the
    # rule engine is never made to wait.
    queue_max: int = Field(default=100_000, ge=100)
    # ISA-18.2 wants shelving time-limited: an operator may shelve for at most this long.
    max_shelve_s: int = Field(default=86_400, ge=60, le=SHELVE_LIMIT_S)
    # Backoff of the writer while the store fails (doubling from the first to the last).
    retry_first_s: float = Field(default=0.05, gt=0, le=10)
    retry_max_s: float = Field(default=5.0, gt=0, le=300)
    # EEMUA 191 figures (GET /alarms/performance).
    standing_after_s: int = Field(default=86_400, ge=60)
    chatter_count: int = Field(default=3, ge=2)
    chatter_window_s: float = Field(default=60.0, gt=0)
    flood_per_10min: int = Field(default=10, ge=1)
    performance_max_days: int = Field(default=31, ge=1, le=366)
