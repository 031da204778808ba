"""Reading the ingest stream as it arrives, before it is durable (rules, roll-ups, KPIs).

A :class:`SampleTap` is given every sample the pipeline receives, in arrival order, in small
chunks. A prompt tap (the rule engine) gets what was appended since its last chunk a turn of
the event loop after it arrived, at most once per ``tap_interval`` (the rules' ``tick_ms``), and
whatever is left when a batch is sealed; a tap added with ``prompt=False`` (KPIs, roll-ups) gets
each batch in one chunk when the batch is sealed (within ``batch_max_delay_ms``). Taps run on
the event loop and must be quick (vectorised over the chunk); they never hold the samples'
writing up, and what they raise is logged and counted on the tap, never on ingest.
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
        data, older than the current values); ``received_ns`` is when the earliest of them
        entered the node (``time.time_ns()`` when its message was read), no later than the
        arrival of any of them."""
