"""The ``[federation]`` section: the link to the parent node and the links of the children."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIB = 1024 * 1024


class FederationSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Take part in the federation (a node without the platform then serves it on the API
    # port); `millnet id serve` runs the identifier service alone and turns it off.
    enabled: bool = True
    # The parent's base URL (http://host:port); empty on a national node or before enrolling
    # (then the URL pinned at enrollment is used).
    parent_url: str = ""
    # The node's Ed25519 key; empty: <node.data_dir>/federation.key (mode 0600).
    key_file: Path | None = None

    # A child exchanges at least this often (an empty exchange is the heartbeat); the parent
    # calls a child late, then lost, when it has not been seen for these long.
    heartbeat_s: float = Field(default=10.0, gt=0, le=3600)
    late_after_s: float = Field(default=30.0, gt=0)
    lost_after_s: float = Field(default=300.0, gt=0)
    # How often an enterprise sends its event summaries (60 s buckets). Below 60 the open
    # bucket is sent too, as it stands, and replaced by the fuller one later (the demo).
    summary_every_s: float = Field(default=60.0, ge=1, le=3600)

    # Envelope checks: the accepted clock difference (nonces are kept this long too) and the
    # largest request or answer body.
    window_s: float = Field(default=120.0, ge=5, le=3600)
    max_request_bytes: int = Field(default=4 * MIB, ge=4096, le=256 * MIB)

    # One exchange carries at most this many messages / bytes of bodies each way.
    batch_max_messages: int = Field(default=1000, ge=1, le=100_000)
    batch_max_bytes: int = Field(default=1 * MIB, ge=1024)
    # Woken by a new message, the sender waits this long for more before it sends (a message
    # waits at most this much longer; a full batch goes at once).
    batch_linger_s: float = Field(default=0.1, ge=0, le=10)
    request_timeout_s: float = Field(default=30.0, gt=0)
    # Backoff while the parent is unreachable or refuses: doubling, with jitter, capped.
    retry_first_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)

    # Outbox bounds (per outbox: the child's upward one, each child's downward one). Beyond
    # the soft bounds droppable kinds are refused (counted, reported upward); critical kinds
    # are accepted up to the hard bounds, beyond which enqueue raises.
    outbox_max_messages: int = Field(default=200_000, ge=10)
    outbox_max_bytes: int = Field(default=256 * MIB, ge=4096)
    outbox_hard_max_messages: int = Field(default=250_000, ge=10)
    outbox_hard_max_bytes: int = Field(default=320 * MIB, ge=4096)
    critical_kinds: tuple[str, ...] = ("incident", "order.ack", "federation.children")

    # Lifetime of an enrollment token.
    token_ttl_s: int = Field(default=7 * 86_400, ge=60, le=365 * 86_400)

    @model_validator(mode="after")
    def _bounds_fit(self) -> FederationSection:
        if self.outbox_hard_max_messages < self.outbox_max_messages:
            raise ValueError("outbox_hard_max_messages must be at least outbox_max_messages")
        if self.outbox_hard_max_bytes < self.outbox_max_bytes:
            raise ValueError("outbox_hard_max_bytes must be at least outbox_max_bytes")
        if self.lost_after_s < self.late_after_s:
            raise ValueError("lost_after_s must be at least late_after_s")
        if self.retry_max_s < self.retry_first_s:
            raise ValueError("retry_max_s must be at least retry_first_s")
        return self
