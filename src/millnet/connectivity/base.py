"""The adapter seam.

Every field protocol (MQTT JSON, Sparkplug B, later OPC UA, Modbus TCP, HTTP) is a
:class:`Source` that runs until cancelled and feeds an
:class:`~millnet.ingest.pipeline.IngestPipeline`.

A source owns its connection (and reconnects by itself), decodes into the pipeline's open batch,
registers acknowledgements, and awaits ``pipeline.wait_capacity()`` before reading more input.
"""

from __future__ import annotations

from typing import Protocol


class Source(Protocol):
    name: str

    async def run(self) -> None:
        """Connect, ingest and reconnect until cancelled."""
        ...
