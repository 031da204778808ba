"""``millnet park``: an industrial park's member enterprises side by side (issue 15,
docs/park.md), through the park node's API with a node-wide viewer token."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from millnet.cli_commands import TokenOption, UrlOption, _api, _call, _refused

DEFAULT_URL = "http://127.0.0.1:8080"


def _num(value: Any, digits: int = 1, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:,.{digits}f}"


def member_lines(members: list[dict[str, Any]]) -> list[str]:
    head = (f"{'member':<24} {'good':>10} {'scrap':>8} {'energy kWh':>11} "
            f"{'kWh/good':>9} {'OEE %':>6} {'last report':<19}")
    rows = [f"{m['node_id']:<24.24} {_num(m['good'], 0):>10} {_num(m['scrap'], 0):>8} "
            f"{_num(m['energy_kwh'], 2):>11} {_num(m['energy_per_good_part_kwh'], 3):>9} "
            f"{_num(m['oee'], 1, 100):>6} {(m['last_report'] or 'never')[:19]:<19}"
            for m in members]
    return [head, *rows] if rows else [head, "no members"]


def park(
    since: Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms (default 24 h ago)")]
    = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms (default now)")] = None,
    url: UrlOption = DEFAULT_URL, token: TokenOption = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON")] = False,
) -> None:
    """The park's members side by side: parts, energy, energy per good part, OEE."""
    if not token:
        raise typer.BadParameter("give --token or set MILLNET_TOKEN", param_hint="--token")
    query = "&".join(f"{k}={v}" for k, v in (("since", since), ("until", until)) if v)
    status, answer = _call("GET", _api(url, "/park/members" + (f"?{query}" if query else "")),
                           token)
    if status != 200:
        _refused(status, answer)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    typer.echo(f"{answer['since'][:16]} .. {answer['until'][:16]}")
    typer.echo("\n".join(member_lines(answer["members"])))
