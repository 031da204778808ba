"""``millnet rules ...``: check rule files offline, and list, show, add or delete a node's rules
through its API (``--url``, ``--token`` or ``MILLNET_URL``/``MILLNET_TOKEN``, as
``millnet command``). Adding and deleting need an admin token.

``validate`` prints every problem as ``file:line: field: message`` and exits 1 if there is any;
``add`` checks the file the same way before it sends anything. Calls the node refuses exit 2.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer

from millnet.cli_commands import TokenOption, UrlOption, _api, _call, _refused
from millnet.rules.files import read_rule_file

app = typer.Typer(no_args_is_help=True,
                  help="Rules: validate rule files; list, show, add, delete (through the API).")

Files = Annotated[list[Path], typer.Argument(help="Rule files (.toml, .yaml, .yml)")]
TenantOption = Annotated[int | None, typer.Option(help="The tenant (node-wide tokens)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]


def _need(token: str) -> None:
    if not token:
        raise typer.BadParameter("give --token or set MILLNET_TOKEN", param_hint="--token")


def _query(tenant_id: int | None) -> str:
    return "" if tenant_id is None else "?" + urllib.parse.urlencode({"tenant_id": tenant_id})


def _line(r: dict[str, Any]) -> str:
    where = r["file"] if r["origin"] == "file" else "api"
    state = "enabled" if r["enabled"] else "disabled"
    priority = r["definition"].get("priority", "-")
    return f"{r['id']:>6}  {r['name']:<32}  {r['kind']:<10}  {priority:<8}  {state:<8}  {where}"


@app.command("validate")
def validate(files: Files) -> None:
    """Check rule files without a node; every problem as file:line: field: message."""
    failed = False
    for path in files:
        rules, errors = read_rule_file(path)
        for error in errors:
            typer.echo(str(error), err=True)
        failed = failed or bool(errors)
        if not errors:
            typer.echo(f"{path}: {len(rules)} rule{'s' if len(rules) != 1 else ''} ok")
    raise typer.Exit(1 if failed else 0)


@app.command("list")
def list_rules(url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "",
               tenant_id: TenantOption = None, as_json: JsonOption = False) -> None:
    """The tenant's rules: id, name, kind, priority, state, where defined."""
    _need(token)
    status, answer = _call("GET", _api(url, "/rules" + _query(tenant_id)), token)
    if status != 200:
        _refused(status, answer)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    for rule in answer:
        typer.echo(_line(rule))


@app.command("show")
def show(rule_id: Annotated[int, typer.Argument(help="The rule's id")],
         url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "") -> None:
    """One rule: its definition and how it runs, as JSON."""
    _need(token)
    status, answer = _call("GET", _api(url, f"/rules/{rule_id}"), token)
    if status != 200:
        _refused(status, answer)
    typer.echo(json.dumps(answer, indent=2))


@app.command("add")
def add(file: Annotated[Path, typer.Argument(help="A rule file (.toml, .yaml, .yml)")],
        url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "",
        tenant_id: TenantOption = None) -> None:
    """Create every rule of FILE through the API (as API rules: the node does not watch the
    file); nothing is sent when the file has a problem."""
    _need(token)
    rules, errors = read_rule_file(file)
    for error in errors:
        typer.echo(str(error), err=True)
    if errors:
        raise typer.Exit(1)
    for rule in rules:
        status, answer = _call("POST", _api(url, "/rules" + _query(tenant_id)), token,
                               rule.to_dict())
        if status != 201:
            typer.echo(f"{rule.name}: ", err=True, nl=False)
            _refused(status, answer)
        typer.echo(_line(answer))


@app.command("delete")
def delete(rule_id: Annotated[int, typer.Argument(help="The rule's id")],
           url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "") -> None:
    """Delete an API rule (a file's rule is changed in its file)."""
    _need(token)
    status, answer = _call("DELETE", _api(url, f"/rules/{rule_id}"), token)
    if status != 200:
        _refused(status, answer)
    typer.echo(f"deleted {_line(answer)}")
