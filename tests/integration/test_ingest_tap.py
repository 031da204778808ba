"""Stream taps: every sample reaches every tap once, in order, soon after it is appended and
before it is durable; a tap that raises is counted on the tap and ingest goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from millnet.ingest.metrics import IngestMetrics
from millnet.ingest.pipeline import IngestPipeline
from millnet.model import SampleBatch, TextSample
from millnet.telemetry.duckdb_store import DuckDBTelemetryStore

T0_NS = 1_767_225_600_000_000_000


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.values: list[float] = []
        self.text: list[str] = []
        self.historical: list[float] = []
        self.calls = 0

    def on_samples(self, batch: SampleBatch, text: Sequence[TextSample], *, historical: bool,
                   received_ns: int) -> None:
        self.calls += 1
        assert received_ns > T0_NS
        (self.historical if historical else self.values).extend(batch.value.tolist())
        self.text.extend(t.value for t in text)


class Broken:
    name = "broken"

    def on_samples(self, batch: SampleBatch, text: Sequence[TextSample], *, historical: bool,
                   received_ns: int) -> None:
        raise ZeroDivisionError("the tap's own fault")


def test_taps_see_every_sample_once_in_order_and_a_failing_tap_costs_nothing(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        with DuckDBTelemetryStore(tmp_path / "t.duckdb", tmp_path / "archive") as store:
            metrics = IngestMetrics()
            # A long batch delay: the taps must see samples long before the batch is sealed.
            pipe = IngestPipeline(store, metrics, max_delay=5.0, max_samples=250,
                                  tap_interval=0.005)
            rec = Recorder()
            pipe.add_tap(Broken())
            pipe.add_tap(rec)
            runner = asyncio.create_task(pipe.run())
            pipe.live.append(1, T0_NS, 0.0, 0)
            pipe.appended(1)
            for _ in range(100):
                if rec.values:
                    break
                await asyncio.sleep(0.005)
            assert rec.values == [0.0], "the tap waited for the batch"
            for i in range(1, 1000):  # crosses seals at 250 samples
                pipe.live.append(1, T0_NS + i, float(i), 0)
                pipe.appended(1)
                if i % 97 == 0:
                    await asyncio.sleep(0)
            pipe.historical.append(2, T0_NS, -1.0, 0)
            pipe.live.text.append(TextSample(3, T0_NS, "running"))
            pipe.appended(2)
            await pipe.drain()
            runner.cancel()
            assert rec.values == [float(i) for i in range(1000)]
            assert rec.historical == [-1.0]
            assert rec.text == ["running"]
            assert pipe.tap_failures["broken"] == rec.calls
            assert len(store.query_range([1], T0_NS, T0_NS + 10**9, limit=2000)) == 1000

    asyncio.run(scenario())


def test_a_tap_that_is_not_prompt_gets_each_batch_once_when_it_is_sealed(tmp_path: Path) -> None:
    async def scenario() -> None:
        with DuckDBTelemetryStore(tmp_path / "t.duckdb", tmp_path / "archive") as store:
            pipe = IngestPipeline(store, IngestMetrics(), max_delay=5.0, max_samples=100,
                                  tap_interval=0.001)
            prompt, sealed = Recorder(), Recorder()
            pipe.add_tap(prompt)
            pipe.add_tap(sealed, prompt=False)
            runner = asyncio.create_task(pipe.run())
            for i in range(99):  # one short of a batch: nothing sealed yet
                pipe.live.append(1, T0_NS + i, float(i), 0)
                pipe.appended(1)
                await asyncio.sleep(0.002)
            assert len(prompt.values) == 99 and prompt.calls > 1
            assert sealed.calls == 0, "a sealed tap was fed before its batch was sealed"
            for i in range(99, 250):
                pipe.live.append(1, T0_NS + i, float(i), 0)
                pipe.appended(1)
            pipe.live.text.append(TextSample(3, T0_NS, "idle"))
            pipe.appended(1)
            await pipe.drain()
            runner.cancel()
            assert sealed.values == prompt.values == [float(i) for i in range(250)]
            assert sealed.text == ["idle"]
            assert sealed.calls == 3  # batches of 100, 100 and the rest

    asyncio.run(scenario())
