"""``millnet modbus ...``: serve the simulated plant, and poll a device once (commissioning)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import math
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from millnet.connectivity.modbus import ModbusSpec, PollGroup
from millnet.connectivity.modbus.oneshot import read_once
from millnet.errors import MillnetError
from millnet.model.limits import ascii_digits

app = typer.Typer(no_args_is_help=True, help="Modbus TCP: simulator and commissioning reads.")
console = Console()


@app.command("sim")
def sim(
    port: Annotated[int, typer.Option(help="TCP port to listen on")] = 5020,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    print_map: Annotated[bool, typer.Option(
        "--print-map", help="print the plant's register map as CSV and exit")] = False,
) -> None:
    """Serve the simulated plant (energy meter, pump VFD, packaging counter) until Ctrl-C."""
    from millnet.sim.modbus_server import plant_map_csv, serve_plant

    if print_map:
        typer.echo(plant_map_csv(), nl=False)
        return

    async def main() -> None:
        async with serve_plant(host, port) as plant:
            console.print(f"Modbus plant on {plant.host}:{plant.port} (units 1 meter, "
                          "2 VFD, 3 counter); map: millnet modbus sim --print-map")
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def _spec(target: str, map_path: Path, unit_id: int, timeout_s: float) -> ModbusSpec:
    host, _, port = target.rpartition(":")
    if not host or not ascii_digits(port, 5):
        raise typer.BadParameter(f"HOST:PORT expected, got {target!r}")
    try:
        text = map_path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise typer.BadParameter(f"--map: cannot read {map_path}: {exc.strerror}") from None
    groups = {row.get("poll_group") or "default" for row in csv.DictReader(io.StringIO(text))}
    try:
        return ModbusSpec(name="read", host=host.strip("[]"), port=int(port), unit_id=unit_id,
                          timeout_s=timeout_s, register_map_csv=str(map_path),
                          poll_groups=[PollGroup(name=g, interval_ms=1000)
                                       for g in sorted(groups)])
    except ValidationError as exc:
        raise typer.BadParameter("; ".join(str(e["msg"]) for e in exc.errors())) from None


@app.command("read")
def read(
    target: Annotated[str, typer.Argument(help="HOST:PORT of the device or gateway")],
    map_path: Annotated[Path, typer.Option("--map", help="register map CSV")],
    unit_id: Annotated[int, typer.Option(help="unit id for rows without one")] = 1,
    timeout_s: Annotated[float, typer.Option(help="seconds to wait for each answer")] = 2.0,
) -> None:
    """Poll every register of the map once and print what each point reads."""
    spec = _spec(target, map_path, unit_id, timeout_s)
    try:
        readings = asyncio.run(read_once(spec))
    except MillnetError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    table = Table("device", "point", "unit id", "table", "address", "value", "unit")
    failed = 0
    for r in readings:
        reg = r.register
        if r.value is None or math.isnan(r.value):
            failed += 1
            shown = f"[red]{r.error}[/red]"
        else:
            shown = f"{r.value:g}"
        table.add_row(reg.device, reg.point, str(spec.unit_of(reg)), reg.table,
                      str(reg.address), shown, reg.unit or "")
    console.print(table)
    if failed:
        console.print(f"[yellow]{failed} of {len(readings)} points unread[/yellow]")
        raise typer.Exit(2)
