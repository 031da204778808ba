"""``millnet alarms ...``: read and act on a node's alarms through its API.

Like ``millnet command``, it talks to a running node (``--url``, ``MILLNET_URL``) with an API
token (``--token``, ``MILLNET_TOKEN``): a viewer's to read, an operator's or an admin's to act.
Tables by default, ``--json`` for the API's answer as is. Exit status 2 when the node refused
(its reason is printed).
"""

from __future__ import annotations

import json
import urllib.parse
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from millnet.cli_commands import TokenOption, UrlOption, _api, _call, _refused

app = typer.Typer(no_args_is_help=True,
                  help="Alarms: list, show, trail, acknowledge, shelve, out of service, "
                       "EEMUA figures.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON")]
CommentOption = Annotated[str | None, typer.Option(help="Why (kept in the audit trail)")]
AlarmArg = Annotated[int, typer.Argument(help="The alarm's id")]
DEFAULT_URL = "http://127.0.0.1:8080"


def _request(method: str, url: str, token: str, path: str, body: Any = None) -> Any:
    if not token:
        raise typer.BadParameter("give --token or set MILLNET_TOKEN", param_hint="--token")
    status, answer = _call(method, _api(url, path), token, body)
    if status != 200:
        _refused(status, answer)
    return answer


def _when(text: str | None) -> str:
    return "-" if not text else text[:19].replace("T", " ")


def _row(a: dict[str, Any]) -> str:
    return (f"{a['id']:>6}  {a['state']:<20}  {a['priority']:<8}  {a['rule_name'][:24]:<24}  "
            f"asset {a['asset_id']:<6}  {_when(a['last_activated_at'])}  {a['message']}")


def _show(data: Any, as_json: bool, lines: list[str]) -> None:
    typer.echo(json.dumps(data, indent=2) if as_json else "\n".join(lines))


@app.command("list")
def list_alarms(
    state: Annotated[list[str] | None, typer.Option(
        help="Only in this state (repeatable): normal, unack_active, acked_active, "
             "rtn_unack, shelved, suppressed_by_design, out_of_service")] = None,
    priority: Annotated[str | None, typer.Option(help="critical, high, medium or low")] = None,
    rule_id: Annotated[int | None, typer.Option(help="Only this rule's")] = None,
    asset_id: Annotated[list[int] | None, typer.Option(help="Only these assets'")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive",
                                                help="Only with the condition on/off")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 100,
    url: UrlOption = DEFAULT_URL, token: TokenOption = "", as_json: JsonOption = False,
) -> None:
    """Alarms, newest first."""
    query: list[tuple[str, Any]] = [("state", s) for s in state or ()]
    query += [("asset_id", a) for a in asset_id or ()]
    query += [(k, v) for k, v in (("priority", priority), ("rule_id", rule_id),
                                  ("limit", limit)) if v is not None]
    if active is not None:
        query.append(("active", str(active).lower()))
    answer = _request("GET", url, token, f"/alarms?{urllib.parse.urlencode(query)}")
    _show(answer, as_json, [_row(a) for a in answer] or ["no alarms"])


@app.command("show")
def show(alarm_id: AlarmArg, url: UrlOption = DEFAULT_URL, token: TokenOption = "",
         as_json: JsonOption = False) -> None:
    """One alarm, every field."""
    answer = _request("GET", url, token, f"/alarms/{alarm_id}")
    _show(answer, as_json, [f"{k:<20} {v}" for k, v in answer.items()])


@app.command("events")
def events(alarm_id: AlarmArg, limit: Annotated[int, typer.Option()] = 100,
           url: UrlOption = DEFAULT_URL, token: TokenOption = "",
           as_json: JsonOption = False) -> None:
    """An alarm's audit trail, newest first."""
    answer = _request("GET", url, token, f"/alarms/{alarm_id}/events?limit={limit}")
    _show(answer, as_json, [
        f"{e['id']:>8}  {_when(datetime.fromtimestamp(e['ts_ms'] / 1000, UTC).isoformat())}  "
        f"{e['event']:<18}  {e['from_state']} -> {e['to_state']}  {e['user'] or '-'}  "
        f"{e['comment'] or ''}" for e in answer])


def _act(alarm_id: int, action: str, body: dict[str, Any], url: str, token: str,
         as_json: bool) -> None:
    answer = _request("POST", url, token, f"/alarms/{alarm_id}/{action}", body)
    _show(answer, as_json, [_row(answer)])


@app.command("ack")
def ack(alarm_id: AlarmArg, comment: CommentOption = None, url: UrlOption = DEFAULT_URL,
        token: TokenOption = "", as_json: JsonOption = False) -> None:
    """Acknowledge an alarm."""
    _act(alarm_id, "acknowledge", {"comment": comment}, url, token, as_json)


@app.command("shelve")
def shelve(alarm_id: AlarmArg,
           duration: Annotated[float | None, typer.Option(help="Seconds")] = None,
           until: Annotated[str | None, typer.Option(help="ISO 8601 time")] = None,
           comment: CommentOption = None, url: UrlOption = DEFAULT_URL,
           token: TokenOption = "", as_json: JsonOption = False) -> None:
    """Shelve an alarm for --duration seconds or --until a time."""
    body = {"comment": comment, "duration_s": duration, "until": until}
    _act(alarm_id, "shelve", body, url, token, as_json)


@app.command("unshelve")
def unshelve(alarm_id: AlarmArg, comment: CommentOption = None, url: UrlOption = DEFAULT_URL,
             token: TokenOption = "", as_json: JsonOption = False) -> None:
    """Unshelve an alarm."""
    _act(alarm_id, "unshelve", {"comment": comment}, url, token, as_json)


@app.command("oos")
def out_of_service(alarm_id: AlarmArg, comment: CommentOption = None,
                   url: UrlOption = DEFAULT_URL, token: TokenOption = "",
                   as_json: JsonOption = False) -> None:
    """Remove an alarm from service (maintenance)."""
    _act(alarm_id, "out-of-service", {"comment": comment}, url, token, as_json)


@app.command("in-service")
def in_service(alarm_id: AlarmArg, comment: CommentOption = None,
               url: UrlOption = DEFAULT_URL, token: TokenOption = "",
               as_json: JsonOption = False) -> None:
    """Return an alarm to service."""
    _act(alarm_id, "in-service", {"comment": comment}, url, token, as_json)


@app.command("performance")
def performance(since: Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms; "
                                                          "default a day before until")] = None,
                until: Annotated[str | None, typer.Option(help="Default now")] = None,
                url: UrlOption = DEFAULT_URL, token: TokenOption = "",
                as_json: JsonOption = False) -> None:
    """EEMUA 191 figures: alarm rate per 10 minutes, floods, standing, chattering, top ten."""
    query = urllib.parse.urlencode({k: v for k, v in (("since", since), ("until", until))
                                    if v is not None})
    f = _request("GET", url, token, f"/alarms/performance?{query}")
    lines = [
        f"period        {_when(f['since'])} .. {_when(f['until'])} ({f['intervals']} x 10 min)",
        f"annunciated   {f['annunciated']}",
        f"per 10 min    average {f['average_per_10min']:.2f}, peak {f['peak_per_10min']}  "
        f"({f['assessment']}; EEMUA: <= 1 acceptable, <= 2 manageable, > 10 a flood)",
        f"in flood      {f['flood_intervals']} intervals ({f['flood_share']:.1%})",
        f"standing      {', '.join(map(str, f['standing'])) or 'none'}",
        f"chattering    {', '.join(map(str, f['chattering'])) or 'none'}",
        "top ten       " + ("; ".join(f"{t['alarm_id']} {t['rule_name']} asset "
                                      f"{t['asset_id']}: {t['annunciations']}"
                                      for t in f["top"]) or "none"),
    ]
    _show(f, as_json, lines)
