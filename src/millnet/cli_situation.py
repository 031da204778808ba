"""``millnet situation ...``: the federation's views through a node's API (issue 13).

Like ``millnet alarms``, it talks to a running node (``--url``, ``MILLNET_URL``) with a node-wide
API token (``--token``, ``MILLNET_TOKEN``): a viewer's to read, an admin's to issue advisories
and orders, an operator's to report an enterprise's progress on an order. Tables by default,
``--json`` for the API's answer as is; exit status 2 when the node refused (its reason printed).
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer

from millnet.cli_commands import TokenOption, UrlOption, _api, _call, _refused

app = typer.Typer(no_args_is_help=True,
                  help="Federation: situation, advisories, rectification orders.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON")]
FileArg = Annotated[Path, typer.Argument(help="A JSON file with the body (see the API docs)",
                                         exists=True, dir_okay=False)]
DEFAULT_URL = "http://127.0.0.1:8080"


def _request(method: str, url: str, token: str, path: str, body: Any = None) -> Any:
    if not token:
        raise typer.BadParameter("give --token or set MILLNET_TOKEN", param_hint="--token")
    status, answer = _call(method, _api(url, path), token, body)
    if status not in (200, 201):
        _refused(status, answer)
    return answer


def _show(data: Any, as_json: bool, lines: list[str]) -> None:
    typer.echo(json.dumps(data, indent=2) if as_json else "\n".join(lines))


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read JSON: {exc}", param_hint=str(path)) from None


def _tally(rows: list[dict[str, Any]], key: str) -> list[str]:
    return [f"  {r[key]:<4} {r.get('name', ''):<24.24} enterprises {r['enterprises']:>5}  "
            f"assets {r['assets']:>7}  events {r['events']:>8}  incidents {r['incidents']:>5}"
            f" ({r['incidents_open']} open)" for r in rows]


def _situation_lines(s: dict[str, Any]) -> list[str]:
    t = s["totals"]
    lines = [f"{s['since'][:16]} .. {s['until'][:16]}  enterprises {t['enterprises']}  assets "
             f"{t['assets']}  events {t['events']}  incidents {t['incidents']} "
             f"({t['incidents_open']} open)", "by province:", *_tally(s["by_province"], "code"),
             "by sector:", *_tally(s["by_sector"], "code"), "by severity:"]
    lines += [f"  {r['severity']:<9} events {r['events']:>8}  incidents {r['incidents']:>5}"
              for r in s["by_severity"]]
    lines.append("most affected products:")
    lines += [f"  {p['vendor']} {p['product']}: {p['matched_assets']} matched assets in "
              f"{p['enterprises']} enterprises, {p['events']} events" for p in s["top_products"]]
    lines.append("orders not acknowledged or overdue:")
    lines += [f"  {o['order_id']}  {o['target']:<24} {o['state']:<12}"
              f"{'  OVERDUE' if o['overdue'] else ''}" for o in s["pending_orders"]] or ["  none"]
    return lines


@app.command("show")
def show(
    since: Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms (default 24 h ago)")]
    = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms (default now)")] = None,
    bucket: Annotated[str, typer.Option(help="Time bucket: 15m, 1h, 1d")] = "1h",
    region: Annotated[str | None, typer.Option(help="GB/T 2260 prefix, e.g. 32")] = None,
    sector: Annotated[str | None, typer.Option(help="GB/T 4754 section letter")] = None,
    url: UrlOption = DEFAULT_URL, token: TokenOption = "", as_json: JsonOption = False,
) -> None:
    """The situation: assets, events and incidents by province, sector and severity."""
    query = {k: v for k, v in (("since", since), ("until", until), ("bucket", bucket),
                               ("region", region), ("sector", sector)) if v}
    answer = _request("GET", url, token,
                      f"/federation/situation?{urllib.parse.urlencode(query)}")
    _show(answer, as_json, _situation_lines(answer))


@app.command("advisories")
def list_advisories(url: UrlOption = DEFAULT_URL, token: TokenOption = "",
                    as_json: JsonOption = False) -> None:
    """Advisories issued here or received, newest first."""
    answer = _request("GET", url, token, "/federation/advisories")
    _show(answer, as_json, [f"{a['id']:<20} {a['severity']:<9} {a['published'][:10]}  "
                            f"{a['title']}" for a in answer] or ["no advisories"])


@app.command("advise")
def advise(body: FileArg, url: UrlOption = DEFAULT_URL, token: TokenOption = "",
           as_json: JsonOption = False) -> None:
    """Issue the advisory in a JSON file (national and secondary nodes, admin token)."""
    answer = _request("POST", url, token, "/federation/advisories", _read(body))
    _show(answer, as_json, [f"advisory {answer['id']} issued"])


def _order_lines(o: dict[str, Any]) -> list[str]:
    head = f"{o['id']:<16} due {o['deadline'][:16]}  {o['title']}"
    return [head, *(f"    {s['target']:<24} {s['state']:<12}"
                    f"{'  OVERDUE' if s['overdue'] else ''}" for s in o["status"])]


@app.command("orders")
def list_orders(url: UrlOption = DEFAULT_URL, token: TokenOption = "",
                as_json: JsonOption = False) -> None:
    """Rectification orders and each target's state."""
    answer = _request("GET", url, token, "/federation/orders")
    _show(answer, as_json, [line for o in answer for line in _order_lines(o)] or ["no orders"])


@app.command("order")
def show_order(order_id: Annotated[str, typer.Argument(help="The order's id")],
               url: UrlOption = DEFAULT_URL, token: TokenOption = "",
               as_json: JsonOption = False) -> None:
    """One order with its audit trail."""
    answer = _request("GET", url, token, f"/federation/orders/{urllib.parse.quote(order_id)}")
    trail = [f"  {a['at'][:19]}  {a['target']:<20} {a['from'] or '-':>12} -> {a['to']:<12} "
             f"{a['actor']}  {a['comment']}" for a in answer["audit"]]
    _show(answer, as_json, [*_order_lines(answer), "audit:", *trail])


@app.command("issue-order")
def issue_order(body: FileArg, url: UrlOption = DEFAULT_URL, token: TokenOption = "",
                as_json: JsonOption = False) -> None:
    """Issue the rectification order in a JSON file (admin token)."""
    answer = _request("POST", url, token, "/federation/orders", _read(body))
    _show(answer, as_json, _order_lines(answer))


@app.command("status")
def status(
    order_id: Annotated[str, typer.Argument(help="The order's id")],
    state: Annotated[str, typer.Argument(help="received, acknowledged, in_progress or done")],
    comment: Annotated[str, typer.Option(help="Why (kept in the audit trail)")] = "",
    url: UrlOption = DEFAULT_URL, token: TokenOption = "", as_json: JsonOption = False,
) -> None:
    """Report this enterprise's progress on an order (sent to its issuer)."""
    answer = _request("POST", url, token,
                      f"/federation/orders/{urllib.parse.quote(order_id)}/status",
                      {"state": state, "comment": comment})
    _show(answer, as_json, _order_lines(answer))
