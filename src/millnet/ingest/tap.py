"""Reading the ingest stream as it arrives, before it is durable (rules, roll-ups, KPIs).

A :class:`SampleTap` is given every sample the pipeline receives, in arrival order, in small
chunks: the pipeline hands over what was appended since the last chunk every ``tap_interval``
(10 ms by default) and whatever is left when a batch is sealed. Taps run on the event loop and
must be quick (vectorised over the chunk); they never hold the samples' writing up, and what
they raise is logged and counted on the tap, never on ingest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from millnet.model import SampleBatch, TextSample


class SampleTap(Protocol):
    """Something that reads the stream: called on the event loop, must not block."""

    name: str

    def on_samples(self, batch: SampleBatch, text: Sequence[TextSample], *,
                   historical: bool, received_ns: int) -> None:
        """``batch`` and ``text`` arrived since the last call (``historical``: store-and-forward
        data, older than the current values); ``received_ns`` is when the pipeline took them
        (``time.time_ns()``), no earlier than their arrival."""
