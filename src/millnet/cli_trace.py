"""``millnet trace IDENTIFIER``: the trace of a product, batch or part through a node's API
(``GET /api/v1/trace/{identifier}``): upstream (what went into it, across enterprises),
downstream (where it went) and the production conditions, as a tree or as JSON. Calls the node
refuses exit 2."""

from __future__ import annotations

import json
import urllib.parse
from typing import Annotated, Any

import typer

from millnet.cli_commands import TokenOption, UrlOption, _api, _call, _refused

DEFAULT_URL = "http://127.0.0.1:8080"


def _event_line(e: dict[str, Any]) -> str:
    where = f" at {e['read_point']}" if e.get("read_point") else ""
    step = e.get("biz_step") or e.get("action") or ""
    return f"{e.get('event_time', '')}  {e['type']:<19} {step:<14} ({e['role']}){where}"


def _conditions(c: dict[str, Any], pad: str) -> list[str]:
    lines = [f"{pad}made at {c.get('asset', c['read_point'])}: "
             f"{len(c.get('machines', []))} machine(s)"]
    for t in c.get("telemetry", [])[:10]:
        avg = "-" if t["avg"] is None else f"{t['avg']:.4g}"
        lines.append(f"{pad}  {t['device']}/{t['point']}: min {t['min']:.4g} avg {avg} "
                     f"max {t['max']:.4g} {t.get('unit') or ''} ({t['count']} samples)")
    for a in c.get("alarms", [])[:10]:
        lines.append(f"{pad}  alarm {a['priority']} {a['rule']} on {a['device']}: "
                     f"{a['state']} {a['message']}")
    return lines


def render(node: dict[str, Any], direction: str, pad: str = "") -> list[str]:
    """The tree below ``node`` in one direction, one line per identifier."""
    lines = []
    for kid in node.get(direction, []):
        status = kid.get("status")
        where = kid.get("node", "")
        mark = f" [{status}]" if status else ""
        remote = f" (via {kid['remote']})" if kid.get("remote") else ""
        error = f": {kid['error']}" if kid.get("error") else ""
        lines.append(f"{pad}{'<-' if direction == 'upstream' else '->'} {kid['identifier']}"
                     f"  {where}{remote}{mark}{error}")
        if kid.get("conditions"):
            lines += _conditions(kid["conditions"], pad + "     ")
        lines += render(kid, direction, pad + "   ")
    return lines


def trace(
    identifier: Annotated[str, typer.Argument(help="88.100.5/BATCH-42, hdl:..., an EPC URI "
                                                   "or a GS1 Digital Link")],
    url: UrlOption = DEFAULT_URL, token: TokenOption = "",
    direction: Annotated[str, typer.Option(help="up | down | both")] = "both",
    depth: Annotated[int, typer.Option(help="levels to walk", min=0, max=12)] = 8,
    tenant_id: Annotated[int | None, typer.Option(help="The tenant (node-wide tokens)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the trace as JSON")] = False,
) -> None:
    """The trace of a product, batch or part: what went into it (through its bill of
    materials, across enterprises' nodes), where it went, and how it was made."""
    if not token:
        raise typer.BadParameter("give --token or set MILLNET_TOKEN", param_hint="--token")
    query = {"direction": direction, "depth": depth}
    if tenant_id is not None:
        query["tenant_id"] = tenant_id
    path = f"/trace/{urllib.parse.quote(identifier, safe='/:')}?{urllib.parse.urlencode(query)}"
    status, answer = _call("GET", _api(url, path), token, timeout=60.0)
    if status != 200:
        _refused(status, answer)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    typer.echo(f"{answer['identifier']}  ({answer.get('node', '')})")
    for e in answer.get("events", []):
        typer.echo(f"   {_event_line(e)}")
    if answer.get("conditions"):
        typer.echo("\n".join(_conditions(answer["conditions"], "   ")))
    for direction_key, title in (("upstream", "upstream (what went into it)"),
                                 ("downstream", "downstream (where it went)")):
        if direction_key in answer:
            typer.echo(f"{title}:")
            typer.echo("\n".join(render(answer, direction_key, "  ")) or "  (nothing known)")
