"""``millnet command ...``: write a point through a node's API and read the command audit.

The CLI talks to a running node (``--url``, default ``http://127.0.0.1:8080``) with an API token
(``--token`` or the ``MILLNET_TOKEN`` environment variable; an operator's or an admin's to write).
``write`` exits 0 when the write is confirmed, 1 when it failed or timed out, 2 when the node
refused it (the node's reason is printed).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, help="Write-back commands: write a point, list the audit.")

UrlOption = Annotated[str, typer.Option(help="The node's API", envvar="MILLNET_URL")]
TokenOption = Annotated[str, typer.Option(
    help="API token (default: $MILLNET_TOKEN)", envvar="MILLNET_TOKEN", show_default=False)]


def parse_value(raw: str, text: bool = False) -> bool | int | float | str:
    """A command-line value: JSON's ``true``, ``false`` and numbers as such, anything else (or
    everything with ``--text``) as text."""
    if text:
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, bool | int | float | str) else raw


def _call(method: str, url: str, token: str, body: Any = None,
          timeout: float = 30.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310
        "Authorization": f"Bearer {token}", "Content-Type": "application/json",
        "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as answer:  # noqa: S310 (_api: http(s) only)
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, {"detail": exc.reason}
    except (urllib.error.URLError, OSError) as exc:
        typer.echo(f"cannot reach {url}: {getattr(exc, 'reason', exc)}", err=True)
        raise typer.Exit(2) from None


def _api(url: str, path: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise typer.BadParameter("must start with http:// or https://", param_hint="--url")
    return f"{url.rstrip('/')}/api/v1{path}"


def _refused(status: int, body: Any) -> None:
    detail = body.get("detail") if isinstance(body, dict) else body
    typer.echo(f"refused ({status}): {detail}", err=True)
    raise typer.Exit(2)


def _line(c: dict[str, Any]) -> str:
    return (f"{c['id']:>6}  {c['requested_at'][:19]}  {c['result']:<9}  {c['device']}/"
            f"{c['point']}  {json.dumps(c['old_value'])} -> {json.dumps(c['new_value'])}  "
            f"{c['token_name'] or '-'}  {c['detail']}")


@app.command("write")
def write(
    device: Annotated[str, typer.Argument(help="site/area/line/device")],
    point: Annotated[str, typer.Argument(help="The point's name")],
    value: Annotated[str, typer.Argument(help="The value: a number, true/false, or text")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the confirmation")] = 5.0,
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
    text: Annotated[bool, typer.Option("--text", help="Send VALUE as text")] = False,
    tenant_id: Annotated[int | None, typer.Option(
        help="The device's tenant (node-wide tokens)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the command as JSON")] = False,
) -> None:
    """Write VALUE to DEVICE's POINT and wait for the device to confirm it."""
    if not token:
        raise typer.BadParameter("give --token or set MILLNET_TOKEN", param_hint="--token")
    body: dict[str, Any] = {"device": device, "point": point,
                            "value": parse_value(value, text), "timeout_s": timeout}
    if tenant_id is not None:
        body["tenant_id"] = tenant_id
    status, answer = _call("POST", _api(url, "/commands"), token, body, timeout=timeout + 30)
    if status != 200:
        _refused(status, answer)
    typer.echo(json.dumps(answer, indent=2) if as_json else _line(answer))
    raise typer.Exit(0 if answer["result"] == "confirmed" else 1)


@app.command("list")
def list_commands(
    device: Annotated[str | None, typer.Option(help="Only this device")] = None,
    point: Annotated[str | None, typer.Option(help="Only this point")] = None,
    user: Annotated[str | None, typer.Option(help="Only this token's name")] = None,
    result: Annotated[str | None, typer.Option(
        help="confirmed, failed, timeout, refused or pending")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 50,
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The audit of commands, newest first."""
    if not token:
        raise typer.BadParameter("give --token or set MILLNET_TOKEN", param_hint="--token")
    query = {k: v for k, v in (("device", device), ("point", point), ("user", user),
                               ("result", result), ("limit", limit)) if v is not None}
    status, answer = _call("GET", _api(url, f"/commands?{urllib.parse.urlencode(query)}"),
                           token)
    if status != 200:
        _refused(status, answer)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    for command in answer:
        typer.echo(_line(command))
