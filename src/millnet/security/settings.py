"""The ``[security]`` section: how security events are kept and when the detectors raise them.

::

    [security]
    enabled = true
    dedup_window_s = 300       # repeats of one (kind, source, target) within it: one row
    max_pending = 10000        # distinct reports waiting to be written; beyond: counted, dropped
    flush_s = 0.5              # how long the writer gathers reports before one batch is written
    auth_window_s = 60         # sliding window of failed authentications
    brute_force_failures = 10  # failures from one source in the window: auth.brute_force
    stuffing_credentials = 5   # distinct failed credentials from one source: credential stuffing
    stuffing_sources = 5       # sources failing with one credential: credential stuffing
    rate_baseline = 60         # message-rate observations a device's baseline is learned from
    rate_warmup = 10           # observations before a device's rate is judged at all
    rate_threshold = 8.0       # robust z-score (median/MAD) of a flood
    violation_window_s = 60    # one protocol-violation event per (kind, source) per window
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SecuritySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    dedup_window_s: float = Field(default=300.0, gt=0, le=86_400)
    max_pending: int = Field(default=10_000, ge=10, le=1_000_000)
    flush_s: float = Field(default=0.5, ge=0, le=60)
    max_tracked: int = Field(default=10_000, ge=10, le=1_000_000,
                             description="sources, credentials and devices each detector "
                                         "remembers at most (the least recent forgotten first)")
    auth_window_s: float = Field(default=60.0, gt=0, le=86_400)
    brute_force_failures: int = Field(default=10, ge=2, le=1_000_000)
    stuffing_credentials: int = Field(default=5, ge=2, le=1_000_000)
    stuffing_sources: int = Field(default=5, ge=2, le=1_000_000)
    rate_baseline: int = Field(default=60, ge=5, le=10_000)
    rate_warmup: int = Field(default=10, ge=3, le=10_000)
    rate_threshold: float = Field(default=8.0, gt=0, le=1_000)
    rate_min_silence: float = Field(default=0.1, ge=0,
                                    description="messages/s a device's baseline must exceed "
                                                "before its silence is an anomaly")
    rate_relearn_after: int = Field(default=30, ge=1, le=10_000,
                                    description="consecutive anomalous observations after which "
                                                "the new rate is taken as the baseline")
    violation_window_s: float = Field(default=60.0, gt=0, le=86_400)
