"""The edge role (issue 11, scope 6): store-and-forward of samples to a central node.

An edge node runs its field adapters and pipeline as any node does, with an :class:`EdgeBuffer`
in place of the telemetry store; the :class:`EdgeUplink` forwards what the buffer holds to the
upstream broker as a Sparkplug B edge node. :func:`open_edge_buffer` and :func:`edge_running`
are what the composition root calls (see ``docs/edge.md``).
"""

from millnet.connectivity.edge.buffer import BufferStatus, EdgeBuffer
from millnet.connectivity.edge.service import edge_running, open_edge_buffer, registry_describer
from millnet.connectivity.edge.settings import EdgeSection
from millnet.connectivity.edge.uplink import EdgeUplink

__all__ = ["BufferStatus", "EdgeBuffer", "EdgeSection", "EdgeUplink", "edge_running",
           "open_edge_buffer", "registry_describer"]
