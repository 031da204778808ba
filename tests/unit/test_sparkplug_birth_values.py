"""Birth values are stored once: a (re)birth announcing the sample the host already holds for a
series stores nothing, and a null birth metric of a series with nothing held is no sample."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from millnet.model import SampleBuffer
from millnet.protocols import sparkplug as sp
from millnet.protocols.sparkplug import BirthMetric
from millnet.protocols.sparkplug_host import SparkplugHost

G, E, D = "Plant", "Edge1", "Press"
NBIRTH, NDATA = f"spBv1.0/{G}/NBIRTH/{E}", f"spBv1.0/{G}/NDATA/{E}"
DBIRTH, DDATA = f"spBv1.0/{G}/DBIRTH/{E}/{D}", f"spBv1.0/{G}/DDATA/{E}/{D}"
T0 = 1_700_000_000_000  # ms
MS = 1_000_000
SID = 7


class Edge:
    """One edge node with one device and one double metric "Temp" (alias 10) -> series 7."""

    def __init__(self, host: SparkplugHost | None = None) -> None:
        self.host = host or SparkplugHost("millnet")
        self.out, self.hist = SampleBuffer(), SampleBuffer()
        self.seq = 0

    def _next(self) -> int:
        self.seq = (self.seq + 1) & 0xFF
        return self.seq

    def birth(self, value: float | None, ts_ms: int, held: dict[int, int] | None = None) -> None:
        self.seq = 0
        self.host.receive(NBIRTH, sp.encode_nbirth([], bd_seq=0, timestamp_ms=T0), 0,
                          self.out, self.hist)
        self.host.bind(G, E, None, {}, self.out, self.hist)
        metric = BirthMetric("Temp", 10, sp.SpDataType.DOUBLE, value, timestamp_ms=ts_ms)
        self.host.receive(DBIRTH, sp.encode_dbirth([metric], seq=self._next(),
                                                   timestamp_ms=ts_ms), 0, self.out, self.hist)
        self.host.bind(G, E, D, {"Temp": SID}, self.out, self.hist, held=held)

    def data(self, value: float, ts_ms: int, *, historical: bool = False) -> None:
        payload = sp.encode_data([(10, sp.SpDataType.DOUBLE, value)], seq=self._next(),
                                 timestamp_ms=ts_ms, historical=historical)
        assert self.host.receive(DDATA, payload, 0, self.out, self.hist) == []

    def stored(self) -> list[tuple[int, float]]:
        """(ts ms, value) of everything emitted, live and historical."""
        pairs = [(t // MS, v) for buf in (self.out, self.hist)
                 for t, v in zip(buf.ts_ns, buf.value, strict=True)]
        return sorted(pairs)


def test_a_rebirth_of_what_the_host_holds_stores_nothing() -> None:
    e = Edge()
    e.birth(1.0, T0)
    e.data(2.0, T0 + 1)
    e.birth(2.0, T0 + 1)  # the latest value again, at its own timestamp
    e.birth(2.0, T0 + 1)
    assert e.stored() == [(T0, 1.0), (T0 + 1, 2.0)]
    assert e.host.birth_values_skipped["repeat"] == 2
    e.birth(3.0, T0 + 5)  # a value the host never saw: stored, once
    e.birth(3.0, T0 + 5)
    assert e.stored() == [(T0, 1.0), (T0 + 1, 2.0), (T0 + 5, 3.0)]


def test_historical_data_raise_what_is_held_but_never_lower_it() -> None:
    e = Edge()
    e.birth(None, T0)
    e.data(5.0, T0 + 10)
    e.data(1.0, T0 + 2, historical=True)  # an older replayed sample after the live one
    e.birth(5.0, T0 + 10)
    assert e.stored() == [(T0 + 2, 1.0), (T0 + 10, 5.0)]


def test_a_null_birth_value_is_a_sample_only_when_something_was_held() -> None:
    e = Edge()
    e.birth(None, T0)
    assert e.stored() == []
    assert e.host.birth_values_skipped["null"] == 1
    e.data(4.0, T0 + 1)
    e.birth(None, T0 + 2)  # the edge says the value became unknown: kept, as before
    stored = e.stored()
    assert stored[0] == (T0 + 1, 4.0) and stored[1][0] == T0 + 2 and math.isnan(stored[1][1])


def test_the_callers_held_values_count_for_series_the_host_has_not_seen() -> None:
    e = Edge()
    e.birth(2.0, T0 + 1, held={SID: (T0 + 1) * MS})  # e.g. the store's current value
    assert e.stored() == []
    e.birth(None, T0 + 2, held={SID: (T0 + 1) * MS})
    assert len(e.stored()) == 1  # a null after a held value is a sample (NaN, BAD)


Step = tuple[str, int]  # ("data" | "hist" | "birth_last" | "birth_new" | "birth_null", dt)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["data", "hist", "birth_last", "birth_new",
                                            "birth_null"]),
                          st.integers(1, 3)), max_size=30))
def test_every_sample_is_emitted_once_however_births_and_data_interleave(
        steps: list[Step]) -> None:
    """An edge node whose births carry its last sent value (or a new reading, or null when it
    has none): every (series, ts) arrives exactly once."""
    e = Edge()
    sent: dict[int, float] = {}  # ts ms -> value, what the edge sent as a sample
    e.birth(None, T0)
    now = T0
    for kind, dt in steps:
        now += dt
        if kind in ("data", "hist"):
            ts = now - 100 if kind == "hist" else now  # a replayed reading is older
            if ts in sent:
                continue
            sent[ts] = float(ts % 997)
            e.data(sent[ts], ts, historical=kind == "hist")
        elif kind == "birth_last" and sent:
            last = max(t for t in sent if t <= now)
            e.birth(sent[last], last)
        elif kind == "birth_new":
            sent[now] = float(now % 991)
            e.birth(sent[now], now)
        elif not sent:
            e.birth(None, now)
    stored = e.stored()
    assert len({t for t, _ in stored}) == len(stored)  # no (series, ts) twice
    assert dict(stored) == sent
