"""``millnet eval``: evaluations that end, with ``--json``, in one JSON line.

``millnet eval anomaly`` trains the streaming detectors on a normal Tennessee Eastman run,
scores fault runs and prints detection rate, false alarm rate and detection delay per fault
and detector next to the published PCA T² figures (docs/anomaly.md). It exits 1 when a target
is missed: false alarm rate above 5 % on normal data, or a best detector below PCA T².
"""

from __future__ import annotations

import json
import time
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from millnet.errors import InvalidInput

app = typer.Typer(no_args_is_help=True, help="Evaluations; each can end with one JSON line.")


@app.callback()
def _group() -> None:
    """Evaluations; each can end with one JSON line (a group even with one command)."""

# a subset that runs in under 5 minutes on 2 cores from a cold cache: step faults, random
# variations, a slow drift and a sticking valve, easy and hard ones
DEFAULT_FAULTS = (1, 2, 4, 5, 6, 7, 10, 14)
ALL_DETECTORS = ("robust", "pca", "river")


def parse_faults(text: str | None, full: bool) -> list[int]:
    from millnet.analytics.tep import N_FAULTS

    if full:
        return list(range(1, N_FAULTS + 1))
    if not text:
        return list(DEFAULT_FAULTS)
    try:
        faults = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise InvalidInput(f"not a comma-separated list of numbers: {text!r}", "faults") from exc
    bad = [f for f in faults if not 1 <= f <= N_FAULTS]
    if bad or not faults:
        raise InvalidInput(f"fault numbers are 1..{N_FAULTS}, got {text!r}", "faults")
    return faults


def parse_detectors(text: str | None) -> list[str]:
    if not text:
        return list(ALL_DETECTORS)
    names = [part.strip() for part in text.split(",") if part.strip()]
    bad = [n for n in names if n not in ALL_DETECTORS]
    if bad or not names:
        raise InvalidInput(f"detectors are {', '.join(ALL_DETECTORS)}, got {text!r}",
                           "detectors")
    return list(dict.fromkeys(names))


def run_anomaly_eval(faults: list[int], detectors: list[str], cache_dir: Path,
                     console: Console, hours: float = 48.0, warmup_hours: float = 16.0,
                     delay_run: int = 3, workers: int = 2) -> dict[str, Any]:
    """Generate (or read) the runs, evaluate, print the tables; the JSON-ready result."""
    from millnet.analytics import tep
    from millnet.analytics.evaluate import evaluate

    started = time.perf_counter()
    shape = {"hours": hours, "warmup_hours": warmup_hours,
             "fault_hour": min(8.0, hours / 6.0)}
    specs = [tep.RunSpec(0, tep.TRAIN_SEED, **shape), tep.RunSpec(0, tep.NORMAL_SEED, **shape)]
    specs += [tep.RunSpec(f, tep.fault_seed(f), **shape) for f in faults]
    console.print(f"TEP runs: {len(specs)} ({hours:g} h each after {warmup_hours:g} h warm-up), "
                  f"cache {cache_dir}")
    runs = tep.load_runs(specs, cache_dir, workers=workers, progress=lambda run: console.print(
        f"  simulated {'normal' if run.spec.fault == 0 else f'IDV({run.spec.fault})'} "
        f"in {run.seconds:.1f} s{' (plant tripped)' if run.tripped else ''}"))
    generated = time.perf_counter() - started
    evaluation = evaluate(runs[0], runs[1], runs[2:], detectors, delay_run=delay_run)
    result = _result(evaluation, runs, faults, generated, time.perf_counter() - started,
                     cache_dir, shape, delay_run)
    _print_tables(console, result)
    return result


def _result(evaluation: Any, runs: list[Any], faults: list[int], generated: float,
            wall: float, cache_dir: Path, shape: dict[str, float],
            delay_run: int) -> dict[str, Any]:
    from millnet.analytics.evaluate import BASELINE, FAR_TARGET
    from millnet.analytics.published import REFERENCE, VERIFIED, published_t2

    best = evaluation.summaries.get(evaluation.best)
    per_fault: dict[str, Any] = {}
    for score in evaluation.scores:
        entry = per_fault.setdefault(str(score.fault), {
            "tripped": score.tripped, "samples": score.samples,
            "published_pca_t2": published_t2(score.fault)})
        entry[score.detector] = {
            "detection_rate": round(score.detection_rate, 4),
            "pre_fault_false_alarm_rate": round(score.pre_fault_false_alarm_rate, 4),
            "delay_minutes": score.delay_minutes}
    published = [published_t2(f) for f in faults]
    known = [p for p in published if p is not None]
    return {
        "detection_rate": round(best.detection_rate, 4) if best else None,
        "false_alarm_rate": round(best.false_alarm_rate, 4) if best else None,
        "best_detector": evaluation.best,
        "baseline_pca_t2_detection_rate": round(
            evaluation.summaries[BASELINE].detection_rate, 4),
        "published_pca_t2_detection_rate": round(sum(known) / len(known), 4) if known else None,
        "published_faults_missing": [f for f, p in zip(faults, published, strict=True)
                                     if p is None],
        "published_reference": REFERENCE, "published_verified": VERIFIED,
        "far_target": FAR_TARGET, "ok": evaluation.ok, "failures": evaluation.failures,
        "detectors": {name: {
            "detection_rate": round(s.detection_rate, 4),
            "false_alarm_rate": round(s.false_alarm_rate, 4),
            "pre_fault_false_alarm_rate": round(s.pre_fault_false_alarm_rate, 4),
            "mean_delay_minutes": (None if s.mean_delay_minutes is None
                                   else round(s.mean_delay_minutes, 1)),
            "faults_detected": s.detected, "seconds": round(s.seconds, 2)}
            for name, s in evaluation.summaries.items()},
        "faults": per_fault,
        "setup": {**shape, "samples_per_run": int(runs[1].data.shape[0]),
                  "fault_sample": runs[0].spec.fault_sample, "sample_minutes": 3.0,
                  "features": int(runs[0].data.shape[1]), "delay_run": delay_run,
                  "control_interval_h": runs[0].spec.control_interval},
        "versions": {p: version(p) for p in ("numpy", "scipy", "river", "tep-studio")},
        "generation_seconds": round(generated, 1), "wall_seconds": round(wall, 1),
        "cache_dir": str(cache_dir),
    }


def _print_tables(console: Console, result: dict[str, Any]) -> None:
    names = list(result["detectors"])
    table = Table(title="Detection rate (delay min) per fault; published PCA T² beside")
    table.add_column("IDV", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("published T²", justify="right")
    for fault, entry in result["faults"].items():
        cells = []
        for name in names:
            s = entry[name]
            delay = "-" if s["delay_minutes"] is None else f"{s['delay_minutes']:.0f}"
            cells.append(f"{s['detection_rate']:.3f} ({delay})")
        pub = entry["published_pca_t2"]
        trip = " trip" if entry["tripped"] else ""
        table.add_row(f"{fault}{trip}", *cells, "-" if pub is None else f"{pub:.3f}")
    console.print(table)
    summary = Table(title="Averages over the faults run")
    for column in ("detector", "detection rate", "FAR normal", "FAR pre-fault",
                   "mean delay min", "seconds"):
        summary.add_column(column, justify="right")
    for name, s in result["detectors"].items():
        delay = "-" if s["mean_delay_minutes"] is None else f"{s['mean_delay_minutes']:.0f}"
        summary.add_row(name, f"{s['detection_rate']:.3f}", f"{s['false_alarm_rate']:.3f}",
                        f"{s['pre_fault_false_alarm_rate']:.3f}", delay, f"{s['seconds']:.1f}")
    console.print(summary)
    console.print(f"best: {result['best_detector']} detection rate {result['detection_rate']}, "
                  f"false alarm rate {result['false_alarm_rate']}; PCA T² on the same runs "
                  f"{result['baseline_pca_t2_detection_rate']}; published PCA T² "
                  f"{result['published_pca_t2_detection_rate']} "
                  f"({'verified' if result['published_verified'] else 'unverified'} figures)")


@app.command("anomaly")
def eval_anomaly(
    full: Annotated[bool, typer.Option("--full", help="every fault type (IDV 1-28)")] = False,
    faults: Annotated[str | None, typer.Option(help="e.g. 1,2,6 (default: a subset)")] = None,
    detectors: Annotated[str | None, typer.Option(help="robust,pca,river")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="end with one JSON line")] = False,
    cache_dir: Annotated[Path | None, typer.Option(
        help="where generated runs are kept (default ~/.cache/millnet/tep)")] = None,
    hours: Annotated[float, typer.Option(help="hours per run after warm-up")] = 48.0,
    warmup: Annotated[float, typer.Option(help="hours simulated and dropped first")] = 16.0,
    workers: Annotated[int, typer.Option(help="simulator processes")] = 2,
) -> None:
    """Streaming anomaly detection on the Tennessee Eastman Process (tep-studio).

    Exits 1 when a target is missed (FAR > 5 %, or best detector below PCA T²)."""
    from millnet.analytics.tep import default_cache_dir

    out = Console(stderr=True) if as_json else Console()
    try:
        chosen = parse_faults(faults, full)
        names = parse_detectors(detectors)
        if not 1.0 <= hours <= 200.0 or not 0.0 <= warmup <= 100.0:
            raise InvalidInput("hours must be within 1..200 and warmup within 0..100", "hours")
    except InvalidInput as exc:
        out.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from exc
    result = run_anomaly_eval(chosen, names, cache_dir or default_cache_dir(), out,
                              hours=hours, warmup_hours=warmup, workers=max(1, workers))
    if as_json:
        print(json.dumps(result))
    if not result["ok"]:
        out.print(f"[red]target missed[/red] {'; '.join(result['failures'])}")
        raise typer.Exit(1)
