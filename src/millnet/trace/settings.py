"""``[trace]``: the EPCIS repository, the trace across nodes, and the events the node emits
itself (docs/traceability.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class TracePeer(BaseModel):
    """Another enterprise's node, for the identifiers of one prefix. ``url`` is its trace API
    (``http://host:port/api/v1/trace/``); empty: found through the identifier hierarchy (the
    ``MN_TRACE`` value of the identifier's handle, or of ``0.NA/<prefix>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prefix: str = Field(min_length=1)
    url: str = ""
    token: SecretStr | None = None


class TraceSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Emit EPCIS events from production data (batch started / finished on a line, parts
    # consumed, product packed).
    emit: bool = False
    emit_every_s: float = Field(default=5.0, gt=0)
    batch_size: int = Field(default=20, ge=1)  # good parts per batch
    # Where to start resolving identifiers of other enterprises ("host:port" of a handle
    # server, usually the node's parent); empty: only [[trace.peers]] with a url.
    resolver: str = ""
    token: SecretStr | None = None  # the token this node presents to other nodes' trace APIs
    timeout_s: float = Field(default=3.0, gt=0, le=60)
    peers: tuple[TracePeer, ...] = ()
