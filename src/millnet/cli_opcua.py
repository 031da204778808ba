"""``millnet opcua ...``: browse an OPC UA server's address space, run the simulated plant."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer
from asyncua.ua.uaerrors import UaError
from rich.console import Console
from rich.table import Table

from millnet.connectivity.opcua.browse import Entry, browse
from millnet.sim.opcua_server import serve_plant

app = typer.Typer(no_args_is_help=True, help="OPC UA: browse servers, simulate a plant.")
console = Console()


@app.command("browse")
def browse_cmd(
    endpoint: Annotated[str, typer.Argument(help="opc.tcp://host:port/path")],
    depth: Annotated[int, typer.Option(min=1, max=32, help="levels below Objects")] = 6,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    timeout: Annotated[float, typer.Option(help="seconds per request")] = 4.0,
) -> None:
    """List folders and variables (datatype, unit, description, writable) below Objects."""
    if not endpoint.startswith("opc.tcp://"):
        console.print("[red]endpoint: must start with opc.tcp://[/red]")
        raise typer.Exit(2)
    try:
        entries = asyncio.run(browse(endpoint, depth=depth, timeout_s=timeout))
    except (OSError, TimeoutError, UaError) as exc:
        console.print(f"[red]{endpoint}: {type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry.as_json()))
        return
    console.print(_table(entries))


def _table(entries: list[Entry]) -> Table:
    table = Table("path", "node id", "type", "unit", "writable", "description")
    for e in entries:
        if e.node_class == "object":
            table.add_row(f"[bold]{'/'.join(e.path)}/[/bold]", e.node_id, "", "", "", "")
        else:
            table.add_row("/".join(e.path), e.node_id, e.variant_type or "?", e.unit or "",
                          "yes" if e.writable else "", e.description or "")
    return table


@app.command("sim")
def sim_cmd(
    port: Annotated[int, typer.Option(min=1, max=65535)] = 4840,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    cert_dir: Annotated[Path | None, typer.Option(
        help="also offer Basic256Sha256 Sign & Encrypt; the server's certificate is created "
             "here (server_cert.der is the file clients trust)")] = None,
    period: Annotated[float, typer.Option(min=0.01, help="seconds between plant updates")] = 1.0,
) -> None:
    """Run the simulated plant (a CNC machine, a pump with a VFD, a packaging counter)."""

    async def main() -> None:
        async with serve_plant(host, port, cert_dir=cert_dir, animate_s=period) as plant:
            console.print(f"simulated plant at {plant.endpoint}"
                          + (f" (trust {plant.cert_path})" if plant.cert_path else ""))
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
