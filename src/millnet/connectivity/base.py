"""The adapter seam.

Every field protocol (MQTT JSON, Sparkplug B, later OPC UA, Modbus TCP, HTTP) is a
:class:`Source` that runs until cancelled and feeds an
:class:`~millnet.ingest.pipeline.IngestPipeline`.

A source owns its connection (and reconnects by itself), decodes into the pipeline's open batch,
registers acknowledgements, and awaits ``pipeline.wait_capacity()`` before reading more input.

The rules every source follows (the MQTT sources show how):

* **Backpressure, never loss.** When the pipeline is full a source stops reading its input (stops
  reading the socket, polls later, leaves the device's buffer alone); it never drops a valid
  sample because the node is busy. Do not rely on the peer's flow control (MQTT's Receive
  Maximum is not kept by every broker): the socket is the source's to stop.
* **One message, one rejection.** Handle each message inside ``IngestMetrics.rejecting``: what
  is malformed or refused is counted by reason and the source goes on; a store outage
  (``StorageError``) propagates so the input is retried, not rejected.
* **Acknowledge after commit.** Register each message's acknowledgement with ``add_ack``; the
  pipeline runs it once the message's samples are durable.
"""

from __future__ import annotations

from typing import Protocol


class Source(Protocol):
    name: str

    async def run(self) -> None:
        """Connect, ingest and reconnect until cancelled."""
        ...
