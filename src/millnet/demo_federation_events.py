"""What happens in the demo's federation, through the nodes' real interfaces: a scanner guessing
bearer tokens at both enterprises' APIs (brute force), a Handle admin guessing at enterprise
#1's identifier service, an unknown device announcing itself over Sparkplug, an advisory from
the national node hitting enterprise #2's S7-1200s, and a rectification order to both
enterprises, which #2 acknowledges and #1 does not. Then the national situation, as tables.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import httpx
from rich.console import Console
from rich.table import Table

from millnet.aio import keep_cancel
from millnet.config import Settings
from millnet.connectivity.mqtt import Broker
from millnet.demo_federation import ENTERPRISE_1_PLACE, Federation
from millnet.errors import MillnetError
from millnet.sim.edge import EdgeFleet
from millnet.sim.factory import FactorySignals, Machine

SparkplugHandle = Callable[[str, bytes, Callable[[str, bytes], Awaitable[None]]], Awaitable[None]]
# For a report to travel enterprise -> secondary -> national (heartbeats of 1 s): seconds,
# unless the machine is busy (two cores shared with the demo's own plant).
WAIT_S = 120.0
SITUATION_EVERY_S = 60.0


@dataclass
class DemoNode:
    """Enterprise #1, the demo's own node, as the scenario reaches it."""

    settings: Settings
    api_url: str
    handle_http: str | None  # its identifier service's HTTP API
    broker: Broker | None
    sparkplug: SparkplugHandle | None  # the in-process entry point when there is no broker


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _until(what: str, check: Callable[[], Awaitable[bool]],
                 timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise MillnetError(f"federation demo: {what} did not happen within {timeout:.0f} s")
        await asyncio.sleep(0.5)


# -- the attacks ----------------------------------------------------------------------------

async def scan(client: httpx.AsyncClient, api_url: str, attempts: int) -> int:
    """A scanner guessing bearer tokens: every one is refused (401), and counted."""
    refused = 0
    for _ in range(attempts):
        r = await client.get(f"{api_url}/api/v1/tenants",
                             headers=_bearer("mn_" + secrets.token_urlsafe(24)))
        refused += r.status_code == 401
    return refused


async def guess_handle_admin(client: httpx.AsyncClient, handle_http: str,
                             attempts: int) -> int:
    """Wrong secrets for the enterprise prefix's admin over the Handle HTTP API."""
    refused = 0
    for _ in range(attempts):
        basic = base64.b64encode(b"300%3A88.100.5%2FADMIN:" + secrets.token_hex(8).encode())
        r = await client.put(f"{handle_http}/api/handles/88.100.5/INTRUDER-TEST",
                             headers={"Authorization": f"Basic {basic.decode()}"},
                             json={"values": []})
        refused += r.status_code in (401, 403, 429)
    return refused


async def rogue_birth(node: DemoNode) -> str:
    """A device never seen before announces itself (NBIRTH + DBIRTH) in the plant's Sparkplug
    namespace: the node registers it, and its security monitor reports it unknown."""
    name = f"ROGUE-{secrets.token_hex(2).upper()}"
    fleet = EdgeFleet(FactorySignals([Machine("Suzhou", "Maintenance", "L9", name, "cnc")]))
    edge = next(iter(fleet.nodes.values()))
    births = fleet.births(edge, int(time.time() * 1000))
    if node.broker is not None:
        b = node.broker
        async with aiomqtt.Client(b.host, b.port, username=b.username, password=b.password,
                                  identifier=f"rogue-{name.lower()}") as client:
            for topic, payload in births:
                await keep_cancel(client.publish(topic, payload, qos=1))
    elif node.sparkplug is not None:
        async def ignore(topic: str, payload: bytes) -> None:
            """Commands to the rogue device go nowhere."""

        for topic, payload in births:
            await node.sparkplug(topic, payload, ignore)
    return name


# -- the national node's advisory and order ---------------------------------------------------

def advisory_body(now: datetime) -> dict[str, Any]:
    return {"id": f"CNVD-{now:%Y}-{now:%m%d%H%M%S}",
            "title": "Siemens SIMATIC S7-1200: denial of service through crafted S7 packets",
            "severity": "high", "published": now.isoformat(),
            "description": "A crafted packet on port 102/tcp stops the CPU; update to V4.5.",
            "affected": [{"cpe": "cpe:2.3:h:siemens:s7-1200:*:*:*:*:*:*:*:*",
                          "versionEndExcluding": "4.5"}]}


def order_body(now: datetime, advisory_id: str, targets: list[str]) -> dict[str, Any]:
    return {"id": f"RO-{now:%Y%m%d-%H%M%S}", "targets": targets,
            "title": "Patch or isolate S7-1200 CPUs below V4.5",
            "action": "Update the firmware to V4.5 or block 102/tcp from the office network; "
                      "report when done.",
            "deadline": (now + timedelta(days=7)).isoformat(), "advisory_id": advisory_id}


async def _post(client: httpx.AsyncClient, url: str, token: str, body: Any) -> Any:
    r = await client.post(url, headers=_bearer(token), json=body)
    if r.status_code >= 300:
        raise MillnetError(f"POST {url}: HTTP {r.status_code} {r.text[:300]}")
    return r.json()


async def situation(client: httpx.AsyncClient, fed: Federation) -> dict[str, Any]:
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    r = await client.get(f"{fed.national.url}/api/v1/federation/situation",
                         params={"since": since, "bucket": "1h"},
                         headers=_bearer(fed.national_token))
    if r.status_code != 200:
        raise MillnetError(f"situation: HTTP {r.status_code} {r.text[:300]}")
    body: dict[str, Any] = r.json()
    return body


# -- the scenario ---------------------------------------------------------------------------

async def run_scenario(console: Console, fed: Federation, node: DemoNode) -> None:
    """Enroll the demo's node, play the events, print the situation now and then (until
    cancelled)."""
    await fed.ready.wait()
    if fed.failed:
        console.print(f"[red]federation[/red] not started: {fed.failed}", soft_wrap=True)
        return
    await fed.enroll_demo_node(node.settings)
    ent1, ent2 = node.settings.node.name, fed.enterprise.name
    banner(console, fed, ent1)
    async with httpx.AsyncClient(timeout=10) as client:
        async def both_placed() -> bool:
            return int((await situation(client, fed))["totals"]["enterprises"]) >= 2

        await _until("both enterprises reaching the national node", both_placed)
        before = _events_by_province(await situation(client, fed))
        scanned = await scan(client, f"http://127.0.0.1:{fed.enterprise.port}", 120)
        scanned += await scan(client, node.api_url, 30)
        guessed = (await guess_handle_admin(client, node.handle_http, 12)
                   if node.handle_http else 0)
        rogue = await rogue_birth(node)
        console.print(f"events: {scanned} bad bearer tokens at both enterprises' APIs, "
                      f"{guessed} wrong Handle admin secrets, unknown device {rogue} born",
                      soft_wrap=True)
        now = datetime.now(UTC)
        advisory = await _post(client, f"{fed.national.url}/api/v1/federation/advisories",
                               fed.national_token, advisory_body(now))
        order = await _post(client, f"{fed.national.url}/api/v1/federation/orders",
                            fed.national_token, order_body(now, advisory["id"], [ent1, ent2]))
        console.print(f"national: advisory {advisory['id']} (S7-1200 < V4.5), order "
                      f"{order['id']} to {ent1} and {ent2}", soft_wrap=True)
        await _acknowledge(client, fed, order["id"])
        await _until("the situation filling in",
                     lambda: _complete(client, fed, order["id"], before))
        while True:
            show_situation(console, await situation(client, fed))
            await asyncio.sleep(SITUATION_EVERY_S)


async def _acknowledge(client: httpx.AsyncClient, fed: Federation, order_id: str) -> None:
    """Enterprise #2's operator acknowledges the order once it has arrived."""
    url = f"http://127.0.0.1:{fed.enterprise.port}/api/v1/federation/orders/{order_id}"

    async def arrived() -> bool:
        r = await client.get(url, headers=_bearer(fed.enterprise_token))
        return r.status_code == 200

    await _until(f"order {order_id} reaching {fed.enterprise.name}", arrived)
    await _post(client, f"{url}/status", fed.enterprise_token,
                {"state": "acknowledged", "comment": "S7-1200 firmware update planned"})


def _events_by_province(s: dict[str, Any]) -> dict[str, int]:
    return {p["code"]: int(p["events"]) for p in s["by_province"]}


async def _complete(client: httpx.AsyncClient, fed: Federation, order_id: str,
                    before: dict[str, int]) -> bool:
    """The national node has this run's events from both provinces (a demo restarted on its
    data starts with the last hour's), the advisory's matches and #2's acknowledgement."""
    s = await situation(client, fed)
    pending = {p["target"] for p in s["pending_orders"] if p["order_id"] == order_id}
    now = _events_by_province(s)
    grew = len(now) >= 2 and all(n > before.get(code, 0) for code, n in now.items())
    return (grew and bool(s["top_products"]) and fed.enterprise.name not in pending
            and len(pending) == 1)


async def final_situation(console: Console, fed: Federation) -> None:
    """Where the national situation stands as the demo ends."""
    if not fed.ready.is_set() or fed.failed or not fed.processes:
        return
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            show_situation(console, await situation(client, fed))
        except (httpx.HTTPError, MillnetError) as exc:
            console.print(f"national situation unavailable: {exc}", soft_wrap=True)


# -- printing ------------------------------------------------------------------------------

def banner(console: Console, fed: Federation, ent1: str) -> None:
    table = Table(title="monitoring federation (one process per node)")
    for column in ("node", "role", "region", "sector", "API"):
        table.add_column(column)
    table.add_row(fed.national.name, "national", "", "", fed.national.url)
    sec, ent = fed.secondary, fed.enterprise
    table.add_row(sec.name, "secondary", sec.region, sec.sector, sec.url)
    table.add_row(ent1, "enterprise #1 (this demo's node)", *ENTERPRISE_1_PLACE, "above")
    table.add_row(ent.name, "enterprise #2", ent.region, ent.sector, ent.url)
    console.print(table)
    console.print(f"national {fed.national.url}  token {fed.national_token}", soft_wrap=True)
    console.print(f"try: curl -H 'Authorization: Bearer {fed.national_token}' "
                  f"{fed.national.url}/api/v1/federation/situation", soft_wrap=True)
    console.print(f"node logs: {fed.national.data_dir.parent}/*/node.log", soft_wrap=True)
    console.print(f"federation pids {' '.join(map(str, fed.pids))}", soft_wrap=True)


def show_situation(console: Console, s: dict[str, Any]) -> None:
    """The national situation as tables, and one line that scripts can read."""
    places = Table(title="national situation: enterprises by province and sector")
    for column in ("province", "enterprises", "assets", "events"):
        places.add_column(column)
    for p in s["by_province"]:
        places.add_row(f"{p['code']} {p['name']}", str(p["enterprises"]), str(p["assets"]),
                       str(p["events"]))
    for p in s["by_sector"]:
        places.add_row(f"sector {p['code']} {p['name']}"[:48], str(p["enterprises"]),
                       str(p["assets"]), str(p["events"]))
    console.print(places)
    severity = Table(title="events by severity")
    severity.add_column("severity")
    severity.add_column("events")
    for row in s["by_severity"]:
        severity.add_row(row["severity"], str(row["events"]))
    console.print(severity)
    products = Table(title="affected products")
    for column in ("product", "assets", "enterprises", "advisories"):
        products.add_column(column)
    for p in s["top_products"]:
        products.add_row(f"{p['vendor']} {p['product']}", str(p["matched_assets"]),
                         str(p["enterprises"]), ", ".join(p["advisories"]))
    console.print(products)
    pending = Table(title="rectification orders not acknowledged")
    for column in ("order", "enterprise", "state", "overdue"):
        pending.add_column(column)
    for o in s["pending_orders"]:
        pending.add_row(o["order_id"], o["target"], o["state"], "yes" if o["overdue"] else "")
    console.print(pending)
    console.print(situation_line(s), soft_wrap=True)


def situation_line(s: dict[str, Any]) -> str:
    provinces = ",".join(f"{p['code']}:{p['enterprises']}" for p in s["by_province"])
    severities = ",".join(f"{r['severity']}:{r['events']}" for r in s["by_severity"])
    products = ",".join(f"{p['vendor']}/{p['product']}:{p['matched_assets']}"
                        for p in s["top_products"])
    pending = ",".join(f"{o['order_id']}/{o['target']}/{o['state']}"
                       for o in s["pending_orders"])
    return (f"situation enterprises={s['totals']['enterprises']} provinces={provinces} "
            f"events={severities} products={products} pending={pending}")
