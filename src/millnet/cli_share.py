"""``millnet share ...``: shares with partner enterprises (issue 15, docs/collaboration.md).

Through a running enterprise node's API (``--url``, ``MILLNET_URL``) with an admin token
(``--token``, ``MILLNET_TOKEN``): a tenant's own, or a node-wide one naming ``--tenant``.
Tables by default, ``--json`` for the API's answer; exit status 2 when the node refused.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from millnet.cli_commands import TokenOption, UrlOption, _api, _call, _refused

app = typer.Typer(no_args_is_help=True, help="Shares with partner enterprises.")
DEFAULT_URL = "http://127.0.0.1:8080"
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON")]
TenantOption = Annotated[int | None, typer.Option(
    "--tenant", help="The tenant's id (node-wide tokens only)")]


def _request(method: str, url: str, token: str, path: str, body: Any = None) -> Any:
    if not token:
        raise typer.BadParameter("give --token or set MILLNET_TOKEN", param_hint="--token")
    status, answer = _call(method, _api(url, path), token, body)
    if status not in (200, 201):
        _refused(status, answer)
    return answer


def _show(data: Any, as_json: bool, lines: list[str]) -> None:
    typer.echo(json.dumps(data, indent=2) if as_json else "\n".join(lines))


def _offered(s: dict[str, Any]) -> str:
    return (f"{s['id']}  {s['status']:<8} {s['partner']:<24.24} {s['scope']:<48.48} "
            f"until {s['expires_at'][:19]}  updates {s['updates']:>5}  key {s['fingerprint']}")


def _received(s: dict[str, Any]) -> str:
    return (f"{s['owner']:<20.20} {s['id']}  {s['status']:<8} {s['scope']:<48.48} "
            f"until {s['expires_at'][:19]}  key {s['fingerprint']}")


@app.command("create")
def create(
    partner: Annotated[str, typer.Option(help="The partner enterprise's node name")],
    scope: Annotated[str, typer.Option(
        help="device-status:<device path>, trace:<identifier> or order:<order id>")],
    expires: Annotated[str, typer.Option(help="A duration (7d, 12h, 30m) or an ISO time")],
    tenant: TenantOption = None, url: UrlOption = DEFAULT_URL, token: TokenOption = "",
    as_json: JsonOption = False,
) -> None:
    """Offer a partner enterprise the data of one scope until it expires (it must accept)."""
    body = {"partner": partner, "scope": scope, "expires": expires, "tenant_id": tenant}
    share = _request("POST", url, token, "/shares", body)
    _show(share, as_json, [_offered(share)])


@app.command("list")
def list_shares(url: UrlOption = DEFAULT_URL, token: TokenOption = "",
                as_json: JsonOption = False) -> None:
    """The shares this enterprise offers, and the offers partners make to it."""
    offered = _request("GET", url, token, "/shares")
    offers = _request("GET", url, token, "/shares/offers")
    mine = [f"  {_offered(s)}" for s in offered] or ["  none"]
    theirs = [f"  {_received(s)}" for s in offers] or ["  none"]
    _show({"offered": offered, "offers": offers}, as_json,
          ["offered:", *mine, "offers waiting for an answer:", *theirs])


@app.command("revoke")
def revoke(share_id: Annotated[str, typer.Argument(help="The share's id (sh-...)")],
           url: UrlOption = DEFAULT_URL, token: TokenOption = "",
           as_json: JsonOption = False) -> None:
    """End a share: no more updates; the partner deletes what it holds."""
    share = _request("POST", url, token, f"/shares/{share_id}/revoke")
    _show(share, as_json, [_offered(share)])


def _answer(owner: str, share_id: str, verb: str, tenant: int | None, url: str, token: str,
            as_json: bool) -> None:
    got = _request("POST", url, token, f"/shares/offers/{owner}/{share_id}/{verb}",
                   {"tenant_id": tenant})
    _show(got, as_json, [_received(got)])


@app.command("accept")
def accept(owner: Annotated[str, typer.Argument(help="The owner enterprise")],
           share_id: Annotated[str, typer.Argument(help="The share's id (sh-...)")],
           tenant: TenantOption = None, url: UrlOption = DEFAULT_URL, token: TokenOption = "",
           as_json: JsonOption = False) -> None:
    """Accept an offer for a tenant, whose viewers then see the shared data."""
    _answer(owner, share_id, "accept", tenant, url, token, as_json)


@app.command("decline")
def decline(owner: Annotated[str, typer.Argument(help="The owner enterprise")],
            share_id: Annotated[str, typer.Argument(help="The share's id (sh-...)")],
            tenant: TenantOption = None, url: UrlOption = DEFAULT_URL, token: TokenOption = "",
            as_json: JsonOption = False) -> None:
    """Decline an offer."""
    _answer(owner, share_id, "decline", tenant, url, token, as_json)


@app.command("end")
def end(owner: Annotated[str, typer.Argument(help="The owner enterprise")],
        share_id: Annotated[str, typer.Argument(help="The share's id (sh-...)")],
        url: UrlOption = DEFAULT_URL, token: TokenOption = "",
        as_json: JsonOption = False) -> None:
    """End a share this enterprise accepted: its data is deleted here, the owner stops."""
    got = _request("POST", url, token, f"/shared/{owner}/{share_id}/end")
    _show(got, as_json, [_received(got)])


@app.command("shared")
def shared(url: UrlOption = DEFAULT_URL, token: TokenOption = "",
           as_json: JsonOption = False) -> None:
    """What partners share with this tenant now, with the last data received."""
    found = _request("GET", url, token, "/shared")
    lines = []
    for s in found:
        lines.append(_received(s))
        lines.append(f"    {json.dumps(s['payload'])[:500]}")
    _show(found, as_json, lines or ["nothing shared with this tenant"])
