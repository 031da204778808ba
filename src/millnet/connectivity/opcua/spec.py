"""How an OPC UA source is configured (one ``[[sources]]`` entry with ``kind = "opcua"``).

Every field is checked at load: an entry that cannot work fails with an error naming it
(``nodes[3].node_id: ...``), before the adapter connects anywhere.
"""

from __future__ import annotations

from typing import Literal

from asyncua import ua
from asyncua.ua.uaerrors import UaStringParsingError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from millnet.connectivity.specs import SourceSpec, parse_device
from millnet.ingest.binder import DevicePath

DeadbandKind = Literal["none", "absolute", "percent"]


def check_node_id(text: str) -> str:
    """A node id in the OPC UA string form (``ns=2;s=Pump.Speed``, ``i=2258``...)."""
    try:
        ua.NodeId.from_string(text)
    except (ValueError, UaStringParsingError) as exc:
        raise ValueError(f"not an OPC UA node id: {text!r} ({exc})") from None
    return text


class Monitoring(BaseModel):
    """How the server samples and filters one monitored item."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampling_interval_ms: float = Field(default=0.0, ge=0.0, le=86_400_000.0)
    deadband: float = Field(default=0.0, ge=0.0)
    deadband_type: DeadbandKind = "none"
    # Values the server may queue per item between two publishes (OPC UA QueueSize).
    queue_size: int = Field(default=100, ge=1, le=10_000)
    writable: bool = False

    @model_validator(mode="after")
    def _deadband_fits(self) -> Monitoring:
        if self.deadband_type == "percent" and self.deadband > 100.0:
            raise ValueError("deadband: a percent deadband is at most 100")
        if self.deadband_type == "none" and self.deadband:
            raise ValueError("deadband: set deadband_type to 'absolute' or 'percent'")
        return self


class NodeMapping(Monitoring):
    """One variable of the server, mapped onto a device's point."""

    node_id: str
    device: str  # site/area/line/device
    point: str = Field(min_length=1, max_length=128)

    @field_validator("node_id")
    @classmethod
    def _check_node(cls, v: str) -> str:
        return check_node_id(v)

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        parse_device(v)
        return v

    @property
    def device_path(self) -> DevicePath:
        return parse_device(self.device)


class ImportFolder(Monitoring):
    """A folder of the address space whose variables are imported by the mapping rules.

    ``browse_path`` names the folder from the Objects folder, browse names joined by ``/``
    (``Plant/Machining/L1/CNC-1``; a name may carry its namespace index, ``2:Plant``). With
    ``device`` unset the **path rule** applies: a variable at ``Objects/<Site>/<Area>/<Line>/
    <Device>/<Variable...>`` becomes point ``<Variable...>`` (deeper names joined with ``.``) of
    device ``Site/Area/Line/Device``. With ``device`` set the **device rule** applies: every
    variable below the folder becomes a point of that device, named by its path below the
    folder joined with ``.``. See docs/opcua.md."""

    browse_path: str = Field(min_length=1, max_length=512)
    device: str | None = None
    max_depth: int = Field(default=8, ge=1, le=32)

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str | None) -> str | None:
        if v is not None:
            parse_device(v)
        return v

    @property
    def path_parts(self) -> list[str]:
        return [p for p in self.browse_path.strip("/").split("/") if p]


class OpcUaSpec(SourceSpec):
    """An OPC UA server this node subscribes to."""

    kind: Literal["opcua"] = "opcua"
    endpoint: str = Field(pattern=r"^opc\.tcp://[^\s/]+(:\d{1,5})?(/\S*)?$", max_length=512)
    # "sign_encrypt": Basic256Sha256, Sign & Encrypt, the server's certificate trusted explicitly.
    security: Literal["none", "sign_encrypt"] = "none"
    server_certificate: str | None = None  # path (DER or PEM) of the one certificate trusted
    username: str | None = None
    password: SecretStr | None = None
    publishing_interval_ms: float = Field(default=100.0, gt=0.0, le=3_600_000.0)
    # Values per PublishResponse: the most taken in one step after the pipeline has room.
    max_notifications_per_publish: int = Field(default=10_000, ge=1, le=100_000)
    timeout_s: float = Field(default=4.0, gt=0.0, le=300.0)
    reconnect_max_s: float = Field(default=10.0, gt=0.0, le=3600.0)
    nodes: list[NodeMapping] = Field(default_factory=list)
    import_folders: list[ImportFolder] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaSpec:
        if self.security == "sign_encrypt" and not self.server_certificate:
            raise ValueError("server_certificate: required with security = 'sign_encrypt' "
                             "(the server's certificate must be trusted explicitly)")
        if (self.password is None) != (self.username is None):
            raise ValueError("username: username and password go together")
        seen: dict[tuple[DevicePath, str], int] = {}
        for i, node in enumerate(self.nodes):
            key = (node.device_path, node.point)
            if key in seen:
                raise ValueError(f"nodes[{i}].point: {node.device}/{node.point} is already "
                                 f"mapped by nodes[{seen[key]}]")
            seen[key] = i
        return self
