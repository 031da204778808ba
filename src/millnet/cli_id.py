"""``millnet id ...``: run an identifier node, and resolve identifiers against any node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from millnet.errors import MillnetError
from millnet.model.limits import ascii_digits
from millnet.protocols.handle import ErrorResponse, HandleValue

if TYPE_CHECKING:
    from millnet.identifiers.hierarchy.client import Server
    from millnet.identifiers.native.handler import AdminBody
    from millnet.protocols.handle import Message

id_app = typer.Typer(no_args_is_help=True, help="Identifier resolution (Handle-compatible).")
console = Console()


@id_app.command("serve")
def serve(
    prefix: Annotated[str | None, typer.Option(
        help="the prefix this node serves, e.g. 88.100.5 (identifiers.prefix)")] = None,
    data: Annotated[Path | None, typer.Option(help="data directory (node.data_dir)")] = None,
    admin_secret_file: Annotated[Path | None, typer.Option(
        help="file holding the admin secret (identifiers.admin_secret_file)")] = None,
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    udp_port: Annotated[int | None, typer.Option()] = None,
    tcp_port: Annotated[int | None, typer.Option()] = None,
    http_port: Annotated[int | None, typer.Option()] = None,
    role: Annotated[str | None, typer.Option(
        help="enterprise | secondary | national (node.role)")] = None,
    parent: Annotated[str | None, typer.Option(
        help="parent node host:port (or host:udp/tcp): unknown prefixes are referred there")
    ] = None,
    delegate: Annotated[list[str] | None, typer.Option(
        help="PREFIX=HOST:PORT[,HOST:PORT...]: delegate a child prefix to these replicas "
             "(repeatable)")] = None,
    service: Annotated[list[str] | None, typer.Option(
        help="HANDLE=HOST:PORT[,HOST:PORT...]: keep a service handle listing these replicas "
             "(repeatable)")] = None,
    delegate_via: Annotated[list[str] | None, typer.Option(
        help="PREFIX=SERVICE_HANDLE: delegate a child prefix through a service handle "
             "(HS_SERV; repeatable)")] = None,
    recursive: Annotated[bool | None, typer.Option(
        "--recursive/--no-recursive",
        help="follow referrals for requests with the REC flag (with a resolver cache)")
    ] = None,
    advertise: Annotated[str | None, typer.Option(
        help="the IP address clients reach this node at, written into its HS_SITE (default: "
             "--host; required when --host is 0.0.0.0 or ::)")] = None,
    database: Annotated[str | None, typer.Option(
        envvar="MILLNET_ID_DATABASE",
        help="identifier database URL, e.g. postgresql+psycopg://user@host/ids (default: "
             "SQLite in --data); prefer the environment variable when it holds a password")
    ] = None,
    follow_changes_every: Annotated[float | None, typer.Option(
        help="with --recursive: seconds between polls of the change feeds of the nodes whose "
             "answers are cached, to drop changed handles (0: keep answers until their TTL)")
    ] = None,
    workers: Annotated[int | None, typer.Option(
        help="processes answering UDP and HTTP on the same ports (SO_REUSEPORT); more than 1 "
             "uses more cores when many clients resolve at once")] = None,
    mirror_of: Annotated[str | None, typer.Option(
        help="the primary's HTTP API (http://host:port): replicate it and refuse writes; "
             "--admin-secret-file must hold the prefix admin's secret on the primary")
    ] = None,
    trusted_proxy: Annotated[list[str] | None, typer.Option(
        metavar="ADDR",
        help="ADDRESS or NETWORK (e.g. 10.0.0.0/24) of a reverse proxy in front of the HTTP "
             "API whose X-Forwarded-For names the client (repeatable); without it the "
             "header is ignored and the client is whoever connects")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="node.toml to read; the options above override it")] = None,
) -> None:
    """Run only the identifier service of a node: native protocol over UDP and TCP, Handle REST
    API over HTTP. Configured like `millnet node` (section identifiers of --config, and
    MILLNET_IDENTIFIERS__* variables); each option overrides its key."""
    import logging

    from millnet.config import load_settings
    from millnet.services import run_node
    from millnet.serving import event_loop_factory

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    ids = _given(prefix=prefix, admin_secret_file=admin_secret_file, host=host,
                 udp_port=udp_port, tcp_port=tcp_port, http_port=http_port, parent=parent,
                 delegates=delegate, services=service, delegates_via=delegate_via,
                 recursive=recursive, advertise=advertise, database=database,
                 follow_changes_every=follow_changes_every, workers=workers,
                 mirror_of=mirror_of)
    overrides = {"node": {"platform": False, **_given(role=role, data_dir=data)},
                 "identifiers": {"enabled": True, **ids},
                 "federation": {"enabled": False},
                 "api": _given(trusted_proxies=trusted_proxy)}
    try:
        settings = load_settings(config, overrides=overrides)
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(run_node(settings))
    except MillnetError as exc:
        console.print(f"[red]error[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc


def _given(**options: object) -> dict[str, object]:
    """The options given on the command line, as settings overrides (paths as strings)."""
    return {key: str(value) if isinstance(value, Path) else value
            for key, value in options.items() if value is not None and value != []}


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
    from millnet.identifiers.hierarchy.client import request, resolution_request
    from millnet.identifiers.hierarchy.resolver import RecursiveResolver
    from millnet.protocols.handle import (
        ErrorResponse,
        ResolutionRequest,
        ResolutionResponse,
        ServiceReferral,
    )

    where = _where(server)
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


def _where(server: str) -> Server:
    from millnet.identifiers.hierarchy.client import Server
    from millnet.identifiers.hierarchy.hierarchy import Endpoint

    try:
        ep = Endpoint.parse(server, "server")
    except MillnetError as exc:
        console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(1) from exc
    return Server(ep.host, ep.udp_port, ep.tcp_port)


def _credentials(auth: str, secret_file: Path) -> tuple[str, int, bytes]:
    index, sep, handle = auth.partition(":")
    if not sep or not ascii_digits(index, 10) or not handle:
        console.print(f"[red]error[/red] --auth {auth!r} is not INDEX:HANDLE, "
                      "e.g. 300:88.100.5/ADMIN")
        raise typer.Exit(1)
    try:
        secret = secret_file.read_bytes().strip()
    except OSError as exc:
        console.print(f"[red]error[/red] cannot read {secret_file}: {exc.strerror}")
        raise typer.Exit(1) from exc
    return handle, int(index), secret


def _admin(body: AdminBody, server: str, auth: str, secret_file: Path,
           opflags: int = 0) -> Message:
    from millnet.identifiers.hierarchy.client import admin_request

    handle, index, secret = _credentials(auth, secret_file)
    try:
        answer = asyncio.run(admin_request(body, _where(server), key_handle=handle,
                                           key_index=index, secret=secret, opflags=opflags))
    except (MillnetError, OSError, TimeoutError) as exc:
        console.print(f"[red]error[/red] {exc or type(exc).__name__}")
        raise typer.Exit(1) from exc
    if answer.response_code != 1:
        message = answer.body.message if isinstance(answer.body, ErrorResponse) else ""
        console.print(f"[red]response code {answer.response_code}[/red] {message}")
        raise typer.Exit(2)
    return answer


def parse_value_option(text: str, index: int) -> HandleValue:
    """``TYPE=DATA`` or ``INDEX:TYPE=DATA`` (the data as UTF-8 text)."""
    head, sep, data = text.partition("=")
    if not sep or not head:
        raise typer.BadParameter(f"{text!r} is not TYPE=DATA or INDEX:TYPE=DATA",
                                 param_hint="--value")
    at, colon, kind = head.partition(":")
    if colon and ascii_digits(at, 10):
        index, head = int(at), kind
    return HandleValue(index, head, data.encode("utf-8"))


ServerOpt = Annotated[str, typer.Option(help="host:port (or host:udp/tcp) of a node")]
AuthOpt = Annotated[str, typer.Option(help="INDEX:HANDLE of the admin, e.g. 300:88.100.5/ADMIN")]
SecretOpt = Annotated[Path, typer.Option(help="file holding the admin's secret key")]


@id_app.command("register")
def register(
    handle: Annotated[str, typer.Argument(help="prefix/suffix; with --mint, prefix/ only")],
    auth: AuthOpt,
    secret_file: SecretOpt,
    server: ServerOpt = "127.0.0.1:2641",
    value: Annotated[list[str] | None, typer.Option(
        help="TYPE=DATA or INDEX:TYPE=DATA (repeatable)")] = None,
    template: Annotated[str | None, typer.Option(
        help="template handle (88.100/TEMPLATE.product) or built-in name")] = None,
    data: Annotated[str | None, typer.Option(help="the template's data: JSON, or @file")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing handle")] = False,
    mint: Annotated[bool, typer.Option(help="let the node choose the suffix")] = False,
) -> None:
    """Register one identifier (native protocol, authenticated with the admin's secret key)."""
    from millnet.identifiers.hierarchy.templates import DATA_TYPE, TEMPLATE_TYPE
    from millnet.protocols.handle import CreateHandleRequest, CreateHandleResponse, OpFlag

    values = [parse_value_option(v, i) for i, v in enumerate(value or (), 1)]
    if template is not None:
        document = _read_data(data)
        free = max((v.index for v in values), default=0) + 1
        values += [HandleValue(free, TEMPLATE_TYPE, template.encode()),
                   HandleValue(free + 1, DATA_TYPE, document)]
    elif data is not None:
        raise typer.BadParameter("--data goes with --template", param_hint="--data")
    if not values:
        raise typer.BadParameter("give --value and/or --template with --data")
    flags = (int(OpFlag.OW) if overwrite else 0) | (int(OpFlag.MINT) if mint else 0)
    target = handle.rstrip("/") + "/" if mint else handle
    answer = _admin(CreateHandleRequest(target, tuple(values)), server, auth, secret_file, flags)
    made = answer.body.handle if isinstance(answer.body, CreateHandleResponse) and \
        answer.body.handle else handle
    console.print(f"registered {made}")


def _read_data(data: str | None) -> bytes:
    if data is None:
        raise typer.BadParameter("--template needs --data (JSON, or @file)", param_hint="--data")
    try:
        text = Path(data[1:]).read_text(encoding="utf-8") if data.startswith("@") else data
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {data[1:]}: {exc}", param_hint="--data") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--data") from exc
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


@id_app.command("register-batch")
def register_batch(
    file: Annotated[Path, typer.Argument(help="JSON lines: one {handle, values | template, "
                                               "data} object per line")],
    auth: AuthOpt,
    secret_file: SecretOpt,
    http: Annotated[str, typer.Option(help="the node's HTTP API, e.g. http://127.0.0.1:8000")
                    ] = "http://127.0.0.1:8000",
) -> None:
    """Register identifiers in batches of 10,000 (POST /api/batch/handles, all or nothing per
    batch); stops at the first refused batch."""
    import base64
    import http.client as http_client
    import urllib.error
    import urllib.request
    from urllib.parse import quote

    from millnet.identifiers.core.store import MAX_BATCH

    handle, index, secret = _credentials(auth, secret_file)
    token = base64.b64encode(quote(f"{index}:{handle}").encode() + b":" + secret).decode()
    try:
        lines = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    except (OSError, ValueError) as exc:
        console.print(f"[red]error[/red] {file}: {exc}")
        raise typer.Exit(1) from exc
    done = 0
    for start in range(0, len(lines), MAX_BATCH):
        body = json.dumps({"items": lines[start:start + MAX_BATCH]}).encode()
        req = urllib.request.Request(  # noqa: S310 - the operator's own node URL
            f"{http.rstrip('/')}/api/batch/handles", body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:  # noqa: S310
                done += len(json.loads(resp.read())["handles"])
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"{}").get("message", "")
            except (ValueError, AttributeError):
                detail = "(not a millnet identifier node's answer)"
            console.print(f"[red]batch from line {start + 1} refused ({exc.code})[/red] "
                          f"{detail}; {done} registered before it")
            raise typer.Exit(2) from exc
        except (OSError, ValueError, KeyError, TypeError, http_client.HTTPException) as exc:
            console.print(f"[red]error[/red] {http}: {exc or type(exc).__name__} "
                          f"(is it a millnet identifier node's HTTP API?); "
                          f"{done} registered before it")
            raise typer.Exit(1) from exc
    console.print(f"registered {done} handles")


@id_app.command("delete")
def delete(handle: Annotated[str, typer.Argument()], auth: AuthOpt, secret_file: SecretOpt,
           server: ServerOpt = "127.0.0.1:2641") -> None:
    """Delete an identifier."""
    from millnet.protocols.handle import DeleteHandleRequest

    _admin(DeleteHandleRequest(handle), server, auth, secret_file)
    console.print(f"deleted {handle}")


@id_app.command("list")
def list_handles(prefix: Annotated[str, typer.Argument(help="e.g. 88.100.5")], auth: AuthOpt,
                 secret_file: SecretOpt, server: ServerOpt = "127.0.0.1:2641") -> None:
    """List the identifiers under a prefix (LIST_HANDLES right needed), one per line."""
    from millnet.protocols.handle import ListHandlesRequest, ListHandlesResponse, prefix_handle

    answer = _admin(ListHandlesRequest(prefix_handle(prefix)), server, auth, secret_file)
    if isinstance(answer.body, ListHandlesResponse):
        for name in answer.body.handles:
            print(name)
