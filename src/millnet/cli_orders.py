"""``millnet orders ...``: check product files offline; define products, place orders from a
file, list and show orders through a node's API (``--url``, ``--token`` or
``MILLNET_URL``/``MILLNET_TOKEN``, as ``millnet rules``).

``validate`` prints every problem as ``file:line: field: message`` and exits 1 if there is any.
``show`` takes a tenant token or the order's follow token. Calls the node refuses exit 2 (a
refused order prints the rule it breaks).
"""

from __future__ import annotations

import json
import tomllib
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from millnet.cli_commands import TokenOption, UrlOption, _api, _call, _refused
from millnet.orders.files import read_product_file

app = typer.Typer(no_args_is_help=True, help="Orders of configurable products: validate, define "
                                             "and list products; place, list and show orders.")

Files = Annotated[list[Path], typer.Argument(help="Product files (.toml, .yaml, .yml)")]
TenantOption = Annotated[int | None, typer.Option(help="The tenant (node-wide tokens)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON")]
DEFAULT_URL = "http://127.0.0.1:8080"


def _need(token: str) -> None:
    if not token:
        raise typer.BadParameter("give --token or set MILLNET_TOKEN", param_hint="--token")


def _query(**params: Any) -> str:
    given = {k: v for k, v in params.items() if v is not None}
    return "?" + urllib.parse.urlencode(given) if given else ""


def _line(o: dict[str, Any]) -> str:
    options = ",".join(f"{k}={v}" for k, v in o["options"].items())
    return (f"{o['identifier']:<28}  {o['status']:<11}  {o['done']:>5}/{o['quantity']:<5}  "
            f"promised {o['promised_at'][:19]}  {o['product']} {options}")


@app.command("validate")
def validate(files: Files) -> None:
    """Check product files without a node; every problem as file:line: field: message."""
    failed = False
    for path in files:
        products, errors = read_product_file(path)
        for error in errors:
            typer.echo(str(error), err=True)
        failed = failed or bool(errors)
        if not errors:
            typer.echo(f"{path}: {len(products)} product{'s' * (len(products) != 1)} ok")
    raise typer.Exit(1 if failed else 0)


@app.command("define")
def define(file: Annotated[Path, typer.Argument(help="A product file")],
           url: UrlOption = DEFAULT_URL, token: TokenOption = "",
           tenant_id: TenantOption = None) -> None:
    """Define (or replace) every product of FILE (admins); nothing is sent when the file has
    a problem."""
    _need(token)
    products, errors = read_product_file(file)
    for error in errors:
        typer.echo(str(error), err=True)
    if errors:
        raise typer.Exit(1)
    for product in products:
        status, answer = _call("PUT", _api(url, f"/order-products/{product.name}"
                                           + _query(tenant_id=tenant_id)), token,
                               product.to_dict())
        if status not in (200, 201):
            typer.echo(f"{product.name}: ", err=True, nl=False)
            _refused(status, answer)
        typer.echo(f"{'defined' if status == 201 else 'replaced'} {product.name}")


@app.command("products")
def products(url: UrlOption = DEFAULT_URL, token: TokenOption = "",
             tenant_id: TenantOption = None, as_json: JsonOption = False) -> None:
    """The tenant's configurable products: options and their choices, rules, routing."""
    _need(token)
    code, answer = _call("GET", _api(url, "/order-products" + _query(tenant_id=tenant_id)),
                         token)
    if code != 200:
        _refused(code, answer)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    for p in answer:
        options = "; ".join(f"{o['id']}: {'/'.join(c['id'] for c in o['choices'])}"
                            for o in p["options"])
        route = " -> ".join(f"{op['id']}@{op['line']}" for op in p["routing"])
        typer.echo(f"{p['name']}  [{options}]  {len(p['rules'])} rules  {route}")


def _read_order(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        if path.suffix.lower() in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, ValueError) as exc:
        typer.echo(f"{path}: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command("place")
def place(file: Annotated[Path, typer.Argument(help="An order: product, quantity, options, "
                                                    "customer (.toml, .yaml, .json)")],
          url: UrlOption = DEFAULT_URL, token: TokenOption = "",
          tenant_id: TenantOption = None, as_json: JsonOption = False) -> None:
    """Place the order of FILE (operators); prints its identifier, promised date, status URL
    and follow token (for the customer)."""
    _need(token)
    body = _read_order(file)
    if isinstance(body, dict) and tenant_id is not None:
        body["tenant_id"] = tenant_id
    status, answer = _call("POST", _api(url, "/orders"), token, body)
    if status != 201:
        if isinstance(answer, dict) and answer.get("rule"):
            rule = answer["rule"]
            typer.echo(f"refused: rule {rule['id']} ({rule['kind']}): {rule['message']}",
                       err=True)
            raise typer.Exit(2)
        _refused(status, answer)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    typer.echo(_line(answer["order"]))
    typer.echo(f"status URL    {answer['status_url']}")
    typer.echo(f"follow token  {answer['follow_token']}  (reads this order only; shown once)")


@app.command("list")
def list_orders(url: UrlOption = DEFAULT_URL, token: TokenOption = "",
                tenant_id: TenantOption = None,
                status: Annotated[str | None, typer.Option(
                    help="scheduled, in_progress or finished")] = None,
                as_json: JsonOption = False) -> None:
    """The tenant's orders: identifier, status, done/quantity, promised date, configuration."""
    _need(token)
    code, answer = _call("GET", _api(url, "/orders" + _query(tenant_id=tenant_id,
                                                             status=status)), token)
    if code != 200:
        _refused(code, answer)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    for order in answer:
        typer.echo(_line(order))


@app.command("show")
def show(identifier: Annotated[str, typer.Argument(help="The order's identifier")],
         url: UrlOption = DEFAULT_URL, token: TokenOption = "") -> None:
    """One order as JSON: status, operations with counts and quality, promised and actual
    dates (a tenant token or the order's follow token)."""
    _need(token)
    code, answer = _call("GET", _api(url, f"/orders/{urllib.parse.quote(identifier)}"), token)
    if code != 200:
        _refused(code, answer)
    typer.echo(json.dumps(answer, indent=2))
