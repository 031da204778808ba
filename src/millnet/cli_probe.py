"""``millnet probe``: the passive network probe, on a capture file or a live interface.

Events are printed as they are raised; at the end, the inventory and the counters (with
``--json``: one JSON line holding both). With ``--report-to URL --token T`` the events and the
inventory's hosts also go to that node (``millnet.sensor_report``: batched, retried, from a
thread of their own, so the capture never waits for the node). Exit status 0, 1 on an error
(a file that is not a capture, an interface that does not exist, no CAP_NET_RAW), 2 on bad
options.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from millnet.errors import InvalidInput, MillnetError, ProtocolError
from millnet.model.limits import ascii_digits
from millnet.model.security import SecurityEvent
from millnet.probe import Baseline, Probe, live_capture, read_capture
from millnet.sensor_report import NodeReporter

Tick = Callable[[], None]

console = Console(stderr=True)


def _print_event(event: SecurityEvent) -> None:
    console.print(f"[bold]{event.severity.label}[/bold] {event.kind} "
                  f"{event.occurred_at.isoformat(timespec='milliseconds')} {event.summary}",
                  soft_wrap=True, markup=True, highlight=False)


def _nothing() -> None:
    return None


def run_file(probe: Probe, path: Path, tick: Tick = _nothing) -> None:
    """Feed a capture file; a file corrupt part-way is one counted error, not a failure."""
    try:
        for ts, frame in read_capture(path):
            probe.feed(ts, frame)
            tick()
    except ProtocolError as exc:
        probe.stats.decode_errors["capture"] += 1
        console.print(f"[yellow]capture ends early[/yellow] {exc}", soft_wrap=True)


async def run_live(probe: Probe, interface: str, duration: float | None,
                   count: int | None, tick: Tick = _nothing) -> None:
    async for ts, frame in live_capture(interface, duration=duration, count=count):
        probe.feed(ts, frame)
        tick()


def parse_ports(items: list[str]) -> dict[int, str]:
    """``["5020=modbus"]`` as ``{5020: "modbus"}``."""
    ports: dict[int, str] = {}
    for item in items:
        number, _, protocol = item.partition("=")
        if not ascii_digits(number.strip(), 5) or not 0 < int(number) < 65536 or not protocol:
            raise InvalidInput(f"{item!r} is not PORT=PROTOCOL (e.g. 5020=modbus)", "port")
        ports[int(number)] = protocol.strip()
    return ports


def summary(probe: Probe, seconds: float) -> dict[str, Any]:
    return {"inventory": [host.to_dict() for host in probe.inventory()],
            "stats": probe.stats.to_dict(), "seconds": round(seconds, 3)}


def _print_inventory(probe: Probe) -> None:
    table = Table("address", "mac", "roles", "services", "vendor", "model", "firmware")
    for host in probe.inventory():
        table.add_row(host.address, host.mac, ", ".join(host.roles), ", ".join(host.services),
                      host.vendor, host.model, host.firmware)
    Console().print(table)
    Console().print_json(data=probe.stats.to_dict())


def probe(
    read: Annotated[Path | None, typer.Option("--read", "-r",
                                              help="pcap or pcapng file to read")] = None,
    interface: Annotated[str | None, typer.Option("--interface", "-i",
                                                  help="capture live (needs CAP_NET_RAW)")] = None,
    duration: Annotated[float | None, typer.Option(help="live: stop after N seconds")] = None,
    count: Annotated[int | None, typer.Option(help="live: stop after N packets")] = None,
    baseline: Annotated[Path | None, typer.Option(
        help="JSON file of known writers (no learning period then)")] = None,
    save_baseline: Annotated[Path | None, typer.Option(
        help="write the writers seen to this file at the end")] = None,
    learn: Annotated[float, typer.Option(
        help="seconds of traffic that teach who writes, when there is no baseline")] = 60.0,
    port: Annotated[list[str] | None, typer.Option(
        help="PORT=PROTOCOL for a service on another port (repeatable): 5020=modbus")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="end with one JSON line")] = False,
    report_to: Annotated[str | None, typer.Option(
        help="also send events and hosts to this node: http://node:8080")] = None,
    token: Annotated[str, typer.Option(
        help="the node's API token (admin; node-wide for hosts), or MILLNET_TOKEN")] = "",
) -> None:
    """Passive probe: decode industrial traffic, inventory hosts, raise security events."""
    if (read is None) == (interface is None):
        console.print("[red]error[/red] give exactly one of --read FILE or --interface NAME")
        raise typer.Exit(2)
    if read is not None and (duration is not None or count is not None):
        console.print("[red]error[/red] --duration and --count are for --interface")
        raise typer.Exit(2)
    reporter = _reporter(report_to, token)
    started = time.perf_counter()
    sensor: Probe | None = None
    try:
        known = Baseline.load(baseline) if baseline else None
        sensor = Probe(_reported(reporter), baseline=known, learn_seconds=learn,
                       ports=parse_ports(port or []))
        tick = _nothing if reporter is None else _hosts_tick(reporter, sensor)
        if read is not None:
            run_file(sensor, read, tick)
        else:
            assert interface is not None
            asyncio.run(run_live(sensor, interface, duration, count, tick))
        if save_baseline is not None:
            sensor.baseline().save(save_baseline)
    except MillnetError as exc:
        console.print(f"[red]error[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print("interrupted")
    finally:
        if reporter is not None:
            _finish(reporter, sensor)
    if sensor is None:  # interrupted before the probe was built
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(summary(sensor, time.perf_counter() - started)))
    else:
        _print_inventory(sensor)


def _reporter(report_to: str | None, token: str) -> NodeReporter | None:
    if report_to is None:
        return None
    token = token or os.environ.get("MILLNET_TOKEN", "")
    if not token:
        console.print("[red]error[/red] --report-to needs --token (or MILLNET_TOKEN)")
        raise typer.Exit(2)
    try:
        return NodeReporter(report_to, token).start()
    except ValueError as exc:
        console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from exc


def _reported(reporter: NodeReporter | None) -> Callable[[SecurityEvent], None]:
    if reporter is None:
        return _print_event

    def both(event: SecurityEvent) -> None:
        _print_event(event)
        reporter.submit(event)

    return both


def _hosts_tick(reporter: NodeReporter, sensor: Probe) -> Tick:
    def tick() -> None:
        reporter.offer_hosts(lambda: [h.to_dict() for h in sensor.inventory()])

    return tick


def _finish(reporter: NodeReporter, sensor: Probe | None) -> None:
    """The last inventory, then what is queued (for a few seconds at most)."""
    if sensor is not None:
        reporter.offer_hosts(lambda: [h.to_dict() for h in sensor.inventory()], force=True)
    reporter.close()
    s = reporter.stats
    console.print(f"reported to the node: {s.sent} events, {s.hosts_sent} host lists"
                  + (f"; {s.refused} refused, {s.dropped_full} dropped"
                     if s.refused or s.dropped_full else "")
                  + (f"; last error: {s.last_error}" if s.last_error else ""),
                  soft_wrap=True, markup=False, highlight=False)
