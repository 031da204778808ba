"""``millnet id ...``: run an identifier node, and resolve identifiers against any node."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from millnet.errors import MillnetError

id_app = typer.Typer(no_args_is_help=True, help="Identifier resolution (Handle-compatible).")
console = Console()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (it halves the per-datagram cost of the event loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@id_app.command("serve")
def serve(
    prefix: Annotated[str, typer.Option(help="the prefix this node serves, e.g. 88.100.5")],
    data: Annotated[Path, typer.Option(help="data directory")],
    admin_secret_file: Annotated[Path, typer.Option(help="file holding the admin secret")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    udp_port: Annotated[int, typer.Option()] = 2641,
    tcp_port: Annotated[int, typer.Option()] = 2641,
    http_port: Annotated[int, typer.Option()] = 8000,
    role: Annotated[str, typer.Option(help="enterprise | secondary | national")] = "enterprise",
    parent: Annotated[str | None, typer.Option(
        help="parent node host:port (or host:udp/tcp): unknown prefixes are referred there")
    ] = None,
    delegate: Annotated[list[str] | None, typer.Option(
        help="PREFIX=HOST:PORT[,HOST:PORT...]: delegate a child prefix to these replicas "
             "(repeatable)")] = None,
    recursive: Annotated[bool, typer.Option(
        help="follow referrals for requests with the REC flag (with a resolver cache)")
    ] = False,
) -> None:
    """Run a standalone identifier node (native protocol over UDP and TCP)."""
    import logging

    from millnet.idnode import IdServerOptions, parse_delegation, serve_identifiers

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        opts = IdServerOptions(prefix, data, admin_secret_file, host, udp_port, tcp_port,
                               http_port, role, parent,
                               tuple(parse_delegation(d) for d in delegate or ()), recursive)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve_identifiers(opts))
    except MillnetError as exc:
        console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(1) from exc


@id_app.command("resolve")
def resolve(
    handle: Annotated[str, typer.Argument(help="prefix/suffix")],
    server: Annotated[str, typer.Option(help="host:port of a node")] = "127.0.0.1:2641",
    index: Annotated[list[int] | None, typer.Option(help="only these indexes")] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", help="only these types")] = None,
    tcp: Annotated[bool, typer.Option(help="TCP only (no UDP first)")] = False,
    follow: Annotated[bool, typer.Option(
        help="follow referrals here (iterative resolution) instead of printing them")
    ] = False,
) -> None:
    """Resolve an identifier against a node, UDP first then TCP."""
    from millnet.identifiers.client import Server, request, resolution_request
    from millnet.identifiers.resolver import RecursiveResolver
    from millnet.protocols.handle import (
        ErrorResponse,
        ResolutionRequest,
        ResolutionResponse,
        ServiceReferral,
    )

    host, _, port = server.rpartition(":")
    where = Server(host or "127.0.0.1", int(port), int(port))
    try:
        if follow:
            resolver = RecursiveResolver(udp=not tcp)
            asked = ResolutionRequest(handle, tuple(index or ()), tuple(type_ or ()))
            body = asyncio.run(resolver.resolve(asked, [where]))
            code = body.response_code if isinstance(body, ErrorResponse) else 1
        else:
            msg = resolution_request(handle, index or (), type_ or ())
            answer = asyncio.run(request(msg, where, udp=not tcp))
            body, code = answer.body, answer.response_code
    except (MillnetError, OSError) as exc:
        console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(1) from exc
    if isinstance(body, ResolutionResponse):
        table = Table(title=body.handle)
        for column in ("index", "type", "data", "ttl"):
            table.add_column(column)
        for v in body.values:
            shown = v.data.decode("utf-8", "replace") if v.data.isascii() else v.data.hex()
            table.add_row(str(v.index), v.type, shown, str(v.ttl))
        console.print(table)
        return
    if isinstance(body, ServiceReferral):
        console.print(f"referral ({code}) for {body.handle}: ask the site in "
                      f"{len(body.values or ())} value(s)")
        raise typer.Exit(3)
    message = body.message if isinstance(body, ErrorResponse) else ""
    console.print(f"[red]response code {code}[/red] {message}")
    raise typer.Exit(2)
