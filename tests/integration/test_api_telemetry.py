"""Telemetry queries over a real DuckDB store: raw ranges, buckets, last values, limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient

from millnet.api import Limits, create_app
from millnet.api.routes.telemetry import BucketAnswer, LastValues, RawAnswer
from millnet.model import Quality, SampleBatch
from tests.integration.test_api_world import N_SAMPLES, STEP_NS, T0_MS, T0_NS, World, world

HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with world(tmp_path_factory.mktemp("api-telemetry")) as built:
        yield built


def _get(w: World, path: str, status: int = 200) -> Any:
    r = w.client.get(path, headers=w.acme.auth("viewer"))
    assert r.status_code == status, (path, r.text)
    return r.json()


def test_raw_range_is_half_open_and_in_time_order(w: World) -> None:
    temp = w.acme.series["temperature"]
    body = _get(w, f"/api/v1/telemetry/raw?series={temp}&start={T0_MS + 10_000}"
                   f"&end={T0_MS + 50_000}")
    answer = RawAnswer.model_validate(body)
    [series] = answer.series
    assert series.series_id == temp
    assert series.ts_ms == [T0_MS + 10_000, T0_MS + 20_000, T0_MS + 30_000, T0_MS + 40_000]
    assert series.value == [21.0, 22.0, 23.0, 24.0]
    assert series.quality == [0, 0, 0, 0]
    assert not series.truncated and series.next_start_ms is None
    assert (answer.start_ms, answer.end_ms) == (T0_MS + 10_000, T0_MS + 50_000)


def test_raw_accepts_iso_times_and_defaults_to_the_last_hour(w: World) -> None:
    temp = w.acme.series["temperature"]
    iso = _get(w, f"/api/v1/telemetry/raw?series={temp}&start=2025-01-01T00:00:10Z"
                  "&end=2025-01-01T01:00:50%2B01:00")
    assert iso["series"][0]["value"] == [21.0, 22.0, 23.0, 24.0]
    naive = _get(w, f"/api/v1/telemetry/raw?series={temp}&start=2025-01-01T00:00:00"
                    "&end=2025-01-01T00:00:00.000001")
    assert naive["series"][0]["value"] == [20.0]
    # Our samples are from 2025; the default window ends now.
    recent = _get(w, f"/api/v1/telemetry/raw?series={temp}")
    assert recent["series"][0]["value"] == []
    assert recent["end_ms"] - recent["start_ms"] == HOUR_MS
    only_end = _get(w, f"/api/v1/telemetry/raw?series={temp}&end={T0_MS + HOUR_MS}")
    assert len(only_end["series"][0]["value"]) == N_SAMPLES


def test_raw_many_series_and_text_points(w: World) -> None:
    s = w.acme.series
    body = _get(w, f"/api/v1/telemetry/raw?series={s['state']},{s['pressure']}"
                   f"&series={s['temperature']}&start={T0_MS}&end={T0_MS + HOUR_MS}")
    ids = [x["series_id"] for x in body["series"]]
    assert ids == [s["state"], s["pressure"], s["temperature"]]  # the order asked for
    state = body["series"][0]
    assert state["value"] == ["idle", "running", "idle"]
    assert state["ts_ms"] == [T0_MS, T0_MS + 60_000, T0_MS + 120_000]
    assert body["series"][1]["value"] == [2.0] * N_SAMPLES


def test_raw_truncation_continues_exactly(w: World) -> None:
    temp = w.acme.series["temperature"]
    seen: list[float] = []
    start: float = T0_MS
    for _ in range(10):
        body = _get(w, f"/api/v1/telemetry/raw?series={temp}&start={start}"
                       f"&end={T0_MS + HOUR_MS}&limit=7")
        [series] = body["series"]
        seen.extend(series["value"])
        if not series["truncated"]:
            break
        assert len(series["value"]) == 7
        start = series["next_start_ms"]
    assert seen == [20.0 + i for i in range(N_SAMPLES)]


def test_sub_millisecond_timestamps_round_trip(w: World) -> None:
    sid = w.acme.series["pressure"]
    ts = T0_NS - 1_000_000_000 + np.array([123_456_000, 123_457_000], dtype=np.int64)
    w.store.write(SampleBatch(np.full(2, sid, np.int32), ts, np.array([7.0, 8.0]),
                              np.zeros(2, np.uint8)), update_last=False)
    body = _get(w, f"/api/v1/telemetry/raw?series={sid}&start={T0_MS - 1000}&end={T0_MS}")
    first, second = body["series"][0]["ts_ms"]
    assert second - first == pytest.approx(0.001, abs=1e-4)
    assert repr(second).endswith(".457")
    # Feeding a returned timestamp back as start selects from that sample on, exactly.
    again = _get(w, f"/api/v1/telemetry/raw?series={sid}&start={second!r}&end={T0_MS}")
    assert again["series"][0]["value"] == [8.0]


def test_buckets_aggregate_each_series(w: World) -> None:
    s = w.acme.series
    body = _get(w, f"/api/v1/telemetry/buckets?series={s['temperature']},{s['state']}"
                   f"&start={T0_MS}&end={T0_MS + 300_000}&width=1m")
    answer = BucketAnswer.model_validate(body)
    assert answer.width_ms == 60_000
    temp, state = answer.series
    assert temp.ts_ms == [T0_MS + i * 60_000 for i in range(5)]
    assert temp.count == [6] * 5
    assert temp.min == [20.0, 26.0, 32.0, 38.0, 44.0]
    assert temp.max == [25.0, 31.0, 37.0, 43.0, 49.0]
    assert temp.last == temp.max
    assert temp.avg == [22.5, 28.5, 34.5, 40.5, 46.5]
    assert state.series_id == s["state"] and state.count == []  # text is not aggregated


@pytest.mark.parametrize(("width", "buckets"), [("15s", 20), ("90s", 4), ("1h", 1),
                                                ("500ms", 30)])
def test_bucket_widths(w: World, width: str, buckets: int) -> None:
    temp = w.acme.series["temperature"]
    body = _get(w, f"/api/v1/telemetry/buckets?series={temp}&start={T0_MS}"
                   f"&end={T0_MS + 300_000}&width={width}")
    counts = body["series"][0]["count"]
    assert len(counts) == buckets and sum(counts) == N_SAMPLES


def test_last_values(w: World) -> None:
    s = w.acme.series
    body = _get(w, f"/api/v1/telemetry/last?series={s['temperature']},{w.spare_series}"
                   f"&series={s['state']}")
    answer = LastValues.model_validate(body)
    temp, state = answer.values
    assert (temp.series_id, temp.value, temp.quality) == (s["temperature"], 49.0, 0)
    assert temp.ts_ms == T0_MS + (N_SAMPLES - 1) * STEP_NS // 1_000_000
    assert (state.series_id, state.value) == (s["state"], "idle")
    assert answer.missing == [w.spare_series]


def test_last_values_after_the_source_went_away(w: World) -> None:
    sid = w.globex.series["pressure"]
    w.store.mark_stale([sid], T0_NS + HOUR_MS * 1_000_000)
    r = w.client.get(f"/api/v1/telemetry/last?series={sid}", headers=w.globex.auth("viewer"))
    [value] = r.json()["values"]
    assert value["quality"] == Quality.STALE and value["value"] == 5.0
    assert value["ts_ms"] == T0_MS + HOUR_MS


def test_hot_route_and_its_documented_twin_answer_alike(w: World) -> None:
    from millnet.api.auth import Caller
    from millnet.api.routes.telemetry import last as documented_last
    from millnet.registry import Role

    ctx = w.client.app.state.millnet  # type: ignore[attr-defined]
    caller = Caller(0, w.acme.tenant_id, Role.VIEWER)
    series = [f"{w.acme.series['temperature']},{w.spare_series}"]
    twin = documented_last(ctx, caller, series)
    served = w.client.get(f"/api/v1/telemetry/last?series={series[0]}",
                          headers=w.acme.auth("viewer"))
    assert served.content == twin.body
    assert served.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("query", "field"), [
    ("series=abc", "series"),
    ("series=-1", "series"),
    ("series=99999999999", "series"),
    ("series=", "series"),
    ("", "series"),
    ("series={t}&start=yesterday", "start"),
    ("series={t}&end=2025-13-01", "end"),
    ("series={t}&start=99999999999999999", "start"),
    ("series=%C2%B2", "series"),  # '²' passes str.isdigit, int() refuses it (was HTTP 500)
    ("series=%D9%A3", "series"),  # an Arabic-Indic 3: a digit, but not a series id
])
def test_raw_rejects_bad_parameters_naming_them(w: World, query: str, field: str) -> None:
    q = query.format(t=w.acme.series["temperature"])
    body = _get(w, f"/api/v1/telemetry/raw?{q}", 400)
    assert body["error"] == "invalid_input" and body["field"] == field, body


def test_raw_answers_what_the_document_calls_valid(w: World) -> None:
    """An empty or out-of-int64 range answers empty; a limit above the node's maximum is
    lowered (the answer's ``limit``); ``limit=0`` does not match the document (422)."""
    t = w.acme.series["temperature"]
    for query in ("start=2000&end=1000", "start=0001-01-01T00:00:00Z&end=1000"):
        body = _get(w, f"/api/v1/telemetry/raw?series={t}&{query}")
        assert body["series"][0]["value"] == [], query
    assert _get(w, f"/api/v1/telemetry/raw?series={t}&limit=100001")["limit"] == 100_000
    assert _get(w, f"/api/v1/telemetry/raw?series={t}&limit=0", 422)["field"] == "limit"


@pytest.mark.parametrize("width", ["1 minute", "0s", "10", "9" * 5000 + "d",  # was HTTP 500
                                   "36501d", "²d", " 1m", "01m"])
def test_buckets_reject_bad_widths(w: World, width: str) -> None:
    temp = w.acme.series["temperature"]
    body = _get(w, f"/api/v1/telemetry/buckets?series={temp}&start={T0_MS}"
                   f"&end={T0_MS + HOUR_MS}&width={quote(width)}", 422)
    assert body["field"] == "width"


def test_buckets_stop_at_the_node_maximum(w: World) -> None:
    temp = w.acme.series["temperature"]
    body = _get(w, f"/api/v1/telemetry/buckets?series={temp}&start={T0_MS}"
                   f"&end={T0_MS + HOUR_MS}&width=1ms")
    assert body["truncated"] and body["end_ms"] == T0_MS + 10_000
    assert body["series"][0]["count"] == [1]  # the sample at T0


@pytest.fixture
def tight(w: World) -> Iterator[TestClient]:
    limits = Limits(max_series=2, max_last_series=3, max_raw_rows=10, default_raw_rows=4,
                    max_buckets=5)
    app = create_app(w.registry, w.store, w.metrics, node_name="tight", role="enterprise",
                     limits=limits)
    with TestClient(app) as client:
        client.headers.update(w.acme.auth("viewer"))
        yield client


def test_query_size_limits(w: World, tight: TestClient) -> None:
    s = w.acme.series
    three = f"{s['temperature']},{s['pressure']},{s['state']}"
    window = f"start={T0_MS}&end={T0_MS + HOUR_MS}"
    r = tight.get(f"/api/v1/telemetry/raw?series={three}&{window}")
    assert r.status_code == 400 and r.json()["field"] == "series"
    assert "at most 2" in r.json()["detail"]
    r = tight.get(f"/api/v1/telemetry/last?series={three},{w.spare_series}")
    assert r.status_code == 400 and "at most 3" in r.json()["detail"]
    assert tight.get(f"/api/v1/telemetry/last?series={three}").status_code == 200
    # Default rows per series; limit × series capped.
    r = tight.get(f"/api/v1/telemetry/raw?series={s['temperature']}&{window}")
    assert r.json()["limit"] == 4 and r.json()["series"][0]["truncated"]
    r = tight.get(f"/api/v1/telemetry/raw?series={s['temperature']},{s['pressure']}"
                  f"&{window}&limit=6")
    assert r.status_code == 200 and r.json()["limit"] == 5
    r = tight.get(f"/api/v1/telemetry/buckets?series={s['temperature']}&{window}&width=10m")
    assert r.status_code == 200 and r.json()["truncated"]
    assert r.json()["end_ms"] == T0_MS + 50 * 60_000  # five buckets: ask again from there
    r = tight.get(f"/api/v1/telemetry/buckets?series={s['temperature']}&{window}&width=12m")
    assert r.status_code == 200 and not r.json()["truncated"]


def test_raw_truncation_of_many_series(w: World) -> None:
    s = w.acme.series
    ids = sorted([s["temperature"], s["pressure"], s["state"]])
    window = f"start={T0_MS}&end={T0_MS + HOUR_MS}"
    body = _get(w, f"/api/v1/telemetry/raw?series={','.join(map(str, ids))}&{window}&limit=7")
    got = {x["series_id"]: x for x in body["series"]}
    assert got[s["temperature"]]["value"] == [20.0 + i for i in range(7)]
    assert got[s["pressure"]]["value"] == [2.0] * 7
    assert got[s["state"]]["value"] == ["idle", "running", "idle"]
    assert [got[i]["truncated"] for i in (s["temperature"], s["pressure"], s["state"])] == [
        True, True, False]
    # 1 µs after the last sample shown (the seventh, at 60 s)
    assert repr(got[s["temperature"]]["next_start_ms"]) == f"{T0_MS + 60_000}.001"


@pytest.mark.parametrize("series", ["%C2%B2", "%D9%A3", "1" * 5000])
def test_last_values_reject_non_ascii_and_huge_ids(w: World, series: str) -> None:
    """The hot route answered HTTP 500 for '²' (issue 9)."""
    body = _get(w, f"/api/v1/telemetry/last?series={series}", 400)
    assert body["field"] == "series"
