"""OPC UA adapter (issue 11, scope 2) on asyncua: subscriptions with sampling interval and
deadband into the ingest pipeline, Basic256Sha256 Sign & Encrypt with an explicitly trusted
server certificate, reconnect and resubscribe, browse and import, write with read-back.

The rules (status codes to quality, address-space paths to ISA-95 devices) are in
:mod:`.mapping` and docs/opcua.md.
"""

from millnet.connectivity.opcua.adapter import OpcUaAdapter
from millnet.connectivity.opcua.spec import ImportFolder, Monitoring, NodeMapping, OpcUaSpec

__all__ = ["ImportFolder", "Monitoring", "NodeMapping", "OpcUaAdapter", "OpcUaSpec"]
