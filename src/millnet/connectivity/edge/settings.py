"""The ``[edge]`` section of an edge node's configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

#: A Sparkplug id (group, edge node, host): one topic level, no wildcards.
SPARKPLUG_ID = r"^[^/+#]{1,64}$"


class EdgeSection(BaseModel):
    """Where an edge node forwards its samples, and how it buffers them meanwhile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"  # the upstream broker
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: Path | None = None  # TLS: trust this CA instead of the system's
    keepalive: int = Field(default=30, ge=5, le=3600)
    client_id: str = ""  # default: millnet-edge-<group_id>-<edge_node_id>
    group_id: str = Field(default="millnet", pattern=SPARKPLUG_ID)
    edge_node_id: str = Field(default="edge", pattern=SPARKPLUG_ID)  # "<area>.<line>" upstream
    # Publish only while this Primary Host says it is online (its STATE); "" publishes always.
    primary_host_id: str = Field(default="millnet", pattern=r"^[^/+#]{0,64}$")
    buffer_dir: Path | None = None  # default: <node.data_dir>/edge
    max_buffer_bytes: int = Field(default=1 << 30, ge=64 << 10)
    when_full: Literal["drop_oldest", "refuse_new"] = "refuse_new"
    # Messages published, not yet acknowledged.
    max_inflight: int = Field(default=256, ge=1, le=65535)
    metrics_per_message: int = Field(default=2000, ge=1, le=100_000)

    def resolved_buffer_dir(self, data_dir: Path) -> Path:
        return self.buffer_dir if self.buffer_dir is not None else data_dir / "edge"

    def resolved_client_id(self) -> str:
        return self.client_id or f"millnet-edge-{self.group_id}-{self.edge_node_id}"
