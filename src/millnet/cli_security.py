"""``millnet security ...``: a node's security events through its API.

Like ``millnet alarms``, it talks to a running node (``--url``, ``MILLNET_URL``) with an API
token (``--token``, ``MILLNET_TOKEN``): any token reads (a tenant's only its tenant's events), an
operator's or an admin's acknowledges. Tables by default, ``--json`` for the API's answer as is.
Exit status 2 when the node refused (its reason is printed). Incidents: ``millnet security
incidents`` lists them, ``millnet security incident open|show|status`` opens one, shows one with
its audit trail, moves one on (operators and admins).
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any

import typer

from millnet.cli_alarms import DEFAULT_URL, CommentOption, JsonOption, _request, _show, _when
from millnet.cli_commands import TokenOption, UrlOption, _api, _call, _refused

app = typer.Typer(no_args_is_help=True,
                  help="Security events: list, summary by time bucket, acknowledge; "
                       "incidents.")
incident_app = typer.Typer(no_args_is_help=True,
                           help="One incident: open, show (with its audit), status.")
app.add_typer(incident_app, name="incident")

SinceOption = Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms")]
KindOption = Annotated[str | None, typer.Option(
    help="Only kinds starting with this: auth. (the family), device.unknown...")]
TenantOption = Annotated[int | None, typer.Option(help="Only this tenant's (node-wide tokens)")]


def _row(e: dict[str, Any]) -> str:
    tenant = "node" if e["tenant_id"] is None else f"t{e['tenant_id']}"
    return (f"{e['id']:>6}  {e['severity']:<8}  {e['status']:<12}  {tenant:<6}  "
            f"{e['kind'][:28]:<28}  x{e['count']:<6}  {_when(e['last_seen'])}  {e['summary']}")


def _query(pairs: dict[str, Any]) -> str:
    return urllib.parse.urlencode({k: v for k, v in pairs.items() if v is not None})


@app.command("events")
def events(
    kind: KindOption = None,
    severity: Annotated[str | None, typer.Option(
        help="At least this severe: info, low, medium, high, critical")] = None,
    since: SinceOption = None, until: SinceOption = None,
    source: Annotated[str | None, typer.Option(help="Only from this source")] = None,
    status: Annotated[str | None, typer.Option(help="open, acknowledged or closed")] = None,
    tenant_id: TenantOption = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 100,
    url: UrlOption = DEFAULT_URL, token: TokenOption = "", as_json: JsonOption = False,
) -> None:
    """Security events, newest first."""
    query = _query({"kind": kind, "severity": severity, "since": since, "until": until,
                    "source": source, "status": status, "tenant_id": tenant_id,
                    "limit": limit})
    answer = _request("GET", url, token, f"/security/events?{query}")
    lines = [_row(e) for e in answer["events"]] or ["no security events"]
    if answer["next_cursor"] is not None:
        lines.append(f"(more: older than id {answer['next_cursor']})")
    _show(answer, as_json, lines)


@app.command("summary")
def summary(
    since: SinceOption = None, until: SinceOption = None,
    bucket: Annotated[str, typer.Option(help="Bucket width: 15m, 1h, 1d")] = "1h",
    kind: KindOption = None, tenant_id: TenantOption = None,
    url: UrlOption = DEFAULT_URL, token: TokenOption = "", as_json: JsonOption = False,
) -> None:
    """Events by time bucket, kind and severity (default: the last 24 h by hour)."""
    query = _query({"since": since, "until": until, "bucket": bucket, "kind": kind,
                    "tenant_id": tenant_id})
    answer = _request("GET", url, token, f"/security/summary?{query}")
    lines = [f"{_when(b['start'])}  {b['kind']:<28}  {b['severity']:<8}  "
             f"{b['events']:>6} events  {b['occurrences']:>8} occurrences"
             for b in answer["buckets"]] or ["no security events in the period"]
    _show(answer, as_json, lines)


@app.command("ack")
def ack(
    event_id: Annotated[int, typer.Argument(help="The event's id")],
    comment: CommentOption = None,
    close: Annotated[bool, typer.Option("--close", help="Close it instead")] = False,
    url: UrlOption = DEFAULT_URL, token: TokenOption = "", as_json: JsonOption = False,
) -> None:
    """Acknowledge (or close) a security event."""
    answer = _request("POST", url, token, f"/security/events/{event_id}/ack",
                      {"comment": comment, "close": close})
    _show(answer, as_json, [_row(answer)])


def _incident_row(i: dict[str, Any]) -> str:
    tenant = "node" if i["tenant_id"] is None else f"t{i['tenant_id']}"
    events = ",".join(str(e) for e in i["event_ids"]) or "-"
    return (f"{i['id']:>6}  {i['severity']:<8}  {i['status']:<13}  {tenant:<6}  "
            f"{_when(i['opened_at'])}  {i['title']}  (events {events})")


def _audit_lines(i: dict[str, Any]) -> list[str]:
    return [f"        {_when(a['at'])}  {a['from_status'] or '-':>13} -> {a['to_status']:<13}  "
            f"{a['actor']}  {a['comment'] or ''}" for a in i["audit"]]


@app.command("incidents")
def incidents(
    status: Annotated[str | None, typer.Option(
        help="open, investigating, contained, resolved or closed")] = None,
    tenant_id: TenantOption = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first")] = 100,
    url: UrlOption = DEFAULT_URL, token: TokenOption = "", as_json: JsonOption = False,
) -> None:
    """Security incidents, newest first."""
    query = _query({"status": status, "tenant_id": tenant_id, "limit": limit})
    answer = _request("GET", url, token, f"/security/incidents?{query}")
    lines = [_incident_row(i) for i in answer["incidents"]] or ["no security incidents"]
    _show(answer, as_json, lines)


@incident_app.command("open")
def open_incident(
    title: Annotated[str, typer.Option(help="What happened, in a line")],
    severity: Annotated[str, typer.Option(
        help="info, low, medium, high or critical")] = "medium",
    event: Annotated[list[int] | None, typer.Option(
        help="A related security event's id (repeatable)")] = None,
    description: Annotated[str, typer.Option(help="More detail")] = "",
    tenant_id: TenantOption = None, comment: CommentOption = None,
    url: UrlOption = DEFAULT_URL, token: TokenOption = "", as_json: JsonOption = False,
) -> None:
    """Open an incident over security events."""
    if not token:
        raise typer.BadParameter("give --token or set MILLNET_TOKEN", param_hint="--token")
    body = {"title": title, "severity": severity, "event_ids": event or [],
            "description": description, "tenant_id": tenant_id, "comment": comment}
    status, answer = _call("POST", _api(url, "/security/incidents"), token, body)
    if status != 201:
        _refused(status, answer)
    _show(answer, as_json, [_incident_row(answer)])


@incident_app.command("show")
def show_incident(
    incident_id: Annotated[int, typer.Argument(help="The incident's id")],
    url: UrlOption = DEFAULT_URL, token: TokenOption = "", as_json: JsonOption = False,
) -> None:
    """One incident with its audit trail."""
    answer = _request("GET", url, token, f"/security/incidents/{incident_id}")
    lines = [_incident_row(answer)]
    if answer["description"]:
        lines.append(f"        {answer['description']}")
    _show(answer, as_json, lines + _audit_lines(answer))


@incident_app.command("status")
def incident_status(
    incident_id: Annotated[int, typer.Argument(help="The incident's id")],
    status: Annotated[str, typer.Argument(
        help="investigating, contained, resolved or closed")],
    comment: CommentOption = None,
    url: UrlOption = DEFAULT_URL, token: TokenOption = "", as_json: JsonOption = False,
) -> None:
    """Move an incident on (the node names the allowed statuses when it refuses)."""
    answer = _request("POST", url, token, f"/security/incidents/{incident_id}/status",
                      {"status": status, "comment": comment})
    _show(answer, as_json, [_incident_row(answer), *_audit_lines(answer)])
