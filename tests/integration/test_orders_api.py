"""Orders through the API of a real node fed by the simulated factory (in process, time-lapsed):
an order is placed, scheduled and advanced to finished by the lines' part counters; bad input
is refused naming what is wrong; tenants and follow tokens see only their own; everything
survives a restart."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from typer.testing import CliRunner, Result

from millnet import demo_orders
from millnet.cli import app
from millnet.config import Settings
from millnet.connectivity.broker import free_port
from millnet.demo_orders import PRODUCTS_FILE
from millnet.errors import NotFound
from millnet.idnode import LiveIdNode
from millnet.node import Node, build_node, running
from millnet.services import build_services, serving
from millnet.sim.edge import EdgeFleet
from millnet.sim.factory import FactorySignals, plant_layout
from millnet.sim.publisher import Handle
from tests.support.nodes import node_settings, until

PRODUCT: dict[str, Any] = {
    "name": "pump",
    "options": [
        {"id": "motor", "default": "7.5kW", "choices": [
            {"id": "7.5kW"}, {"id": "11kW", "lead_time": "1h"}]},
        {"id": "seal", "choices": [{"id": "NBR"}, {"id": "SiC"}]}],
    "rules": [{"id": "R1", "kind": "requires", "when": {"motor": "11kW"},
               "then": {"seal": ["SiC"]}, "message": "an 11 kW motor needs a SiC seal"}],
    "routing": [{"id": "housing", "line": "Suzhou/Stamping/L2", "cycle_s": 0.1},
                {"id": "machining", "line": "Suzhou/Machining/L1", "cycle_s": 0.5}]}


def _settings(tmp_path: Path, *, ids: bool = False) -> Settings:
    if not ids:  # with the demo's product file
        return node_settings(tmp_path, 1, mqtt={"enabled": False},
                             identifiers={"prefix": "88.100.5"},
                             orders={"files": [str(PRODUCTS_FILE)]})
    secret = tmp_path / "admin.secret"
    secret.write_text("a-test-secret-of-some-length\n")
    secret.chmod(0o600)
    port = free_port()
    return node_settings(tmp_path, 1, mqtt={"enabled": False}, identifiers={
        "enabled": True, "prefix": "88.100.5", "host": "127.0.0.1", "udp_port": port,
        "tcp_port": port, "http_port": 0, "admin_secret_file": str(secret)})


async def _feed(fleet: EdgeFleet, handle: Handle) -> None:
    """The fleet's births, then a step of 2 simulated seconds every 50 ms."""
    async def command(topic: str, payload: bytes) -> None:
        return None

    for topic, payload in fleet.all_births(_ms()):
        await handle(topic, payload, command)
    while True:
        await asyncio.sleep(0.05)
        fleet.step(2.0)
        for node in fleet.nodes.values():
            for topic, payload in fleet.data(node, _ms()):
                await handle(topic, payload, command)


def _ms() -> int:
    return time.time_ns() // 1_000_000


@contextlib.asynccontextmanager
async def _served(settings: Settings) -> AsyncIterator[Node]:
    """The platform alone, or with the identifier service when the settings enable it."""
    if not settings.identifiers.enabled:
        async with running(build_node(settings)) as live:
            yield live
        return
    async with serving(build_services(settings)) as services:
        assert services.platform is not None and services.identifiers is not None
        IDS[services.platform.tenant_id] = services.identifiers
        yield services.platform


IDS: dict[int, LiveIdNode] = {}


@contextlib.asynccontextmanager
async def _plant(settings: Settings, layout: tuple[int, int, int] = (1, 2, 2),
                 ) -> AsyncIterator[tuple[Node, httpx.AsyncClient, str]]:
    fleet = EdgeFleet(FactorySignals(plant_layout(*layout), warm=True))
    async with _served(settings) as live:
        assert live.sparkplug is not None
        feed = asyncio.create_task(_feed(fleet, live.sparkplug.handle))
        token, _ = live.registry.create_token(live.tenant_id, "admin", "shop")
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live.api_port}/api/v1",
                                         headers={"Authorization": f"Bearer {token}"},
                                         timeout=10) as client:
                yield live, client, token
        finally:
            feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed


async def _cli(node: Node, client: httpx.AsyncClient, tmp: Path, follow: str,
               ident: str) -> None:
    """millnet orders place / list / show against the node (in a thread: the node serves on
    this loop)."""
    url = str(client.base_url).rstrip("/").removesuffix("/api/v1")
    token = client.headers["Authorization"].removeprefix("Bearer ")

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, ["orders", *args, "--url", url])

    good, bad = tmp / "order.toml", tmp / "bad.yaml"
    good.write_text('product = "pump"\nquantity = 3\ncustomer = "PO-9"\n'
                    '[options]\nseal = "SiC"\n')
    bad.write_text("product: pump\nquantity: 1\noptions: {motor: 11kW, seal: NBR}\n")
    result = await asyncio.to_thread(run, "place", str(good), "--token", token)
    assert result.exit_code == 0, result.output
    assert "88.100.5/ORDER-" in result.output and "follow token  mno_" in result.output
    result = await asyncio.to_thread(run, "place", str(bad), "--token", token)
    assert result.exit_code == 2
    assert "refused: rule R1 (requires): an 11 kW motor needs a SiC seal" in result.output
    result = await asyncio.to_thread(run, "list", "--token", token)
    assert result.exit_code == 0 and ident in result.output and "PO-9" not in result.output
    result = await asyncio.to_thread(run, "show", ident, "--token", follow)
    assert result.exit_code == 0 and json.loads(result.output)["identifier"] == ident
    result = await asyncio.to_thread(run, "list", "--token", follow)
    assert result.exit_code == 2
    result = await asyncio.to_thread(run, "products", "--token", token)
    assert result.exit_code == 0
    assert "pump  [motor: 7.5kW/11kW; seal: NBR/SiC]  1 rules  housing@" in result.output


def _lines_exist(node: Node) -> bool:
    tenant = node.registry.get_tenant(node.tenant_id).name
    try:
        for line in ("Suzhou/Stamping/L2", "Suzhou/Machining/L1"):
            node.registry.find_asset(node.tenant_id, f"{tenant}/{line}")
    except NotFound:
        return False
    return True


async def _order(client: httpx.AsyncClient, identifier: str, token: str | None = None,
                 ) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return await client.get(f"/orders/{identifier}", headers=headers)


def test_an_order_is_scheduled_tracked_to_finished_and_survives_a_restart(
        tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    state: dict[str, Any] = {}

    async def first_run() -> None:
        async with _plant(settings) as (node, client, _):
            await until(lambda: _lines_exist(node), 10, "the lines' births")
            r = await client.put("/order-products/pump", json=PRODUCT)
            assert r.status_code == 201, r.text
            names = [p["name"] for p in (await client.get("/order-products")).json()]
            assert names == ["pump", "pump-p200"]  # the API's and the [orders] file's
            r = await client.post("/orders", json={"product": "pump", "quantity": 12,
                                                   "options": {"seal": "NBR"},
                                                   "customer": "PO-1"})
            assert r.status_code == 201, r.text
            placed = r.json()
            order = placed["order"]
            ident = order["identifier"]
            assert ident.startswith("88.100.5/ORDER-")
            assert placed["status_url"].endswith(f"/api/v1/orders/{ident}")
            assert [op["name"] for op in order["operations"]] == ["housing", "machining"]
            first, second = order["operations"]
            assert first["planned_end"] <= second["planned_start"]
            assert order["promised_at"] == second["planned_end"]
            # a later order with a lead time: scheduled after it, waiting
            r = await client.post("/orders", json={"product": "pump", "quantity": 5,
                                                   "options": {"motor": "11kW", "seal": "SiC"}})
            assert r.status_code == 201, r.text
            late = r.json()["order"]
            assert late["lead_time_s"] == 3600 and late["release_at"] <= late["promised_at"]

            async def finished() -> bool:
                body = (await _order(client, ident, placed["follow_token"])).json()
                state["order"] = body
                return bool(body["status"] == "finished")

            for _ in range(300):
                if await finished():
                    break
                await asyncio.sleep(0.1)
            body = state["order"]
            assert body["status"] == "finished", body
            assert body["done"] == 12 and body["started_at"] and body["finished_at"]
            for op in body["operations"]:
                assert op["status"] == "done" and op["good"] == 12
                assert op["quality"] is not None and 0 < op["quality"] <= 1
            assert body["operations"][0]["finished_at"] <= body["operations"][1]["finished_at"]
            state.update(ident=ident, follow=placed["follow_token"],
                         late=late["identifier"], late_body=late)

    async def second_run() -> None:
        async with _plant(settings) as (_, client, _token):
            r = await _order(client, state["ident"], state["follow"])
            assert r.status_code == 200 and r.json() == state["order"]
            r = await _order(client, state["late"])
            assert r.status_code == 200
            late = r.json()
            assert late["status"] == "scheduled"
            assert late["promised_at"] == state["late_body"]["promised_at"]
            listed = (await client.get("/orders")).json()
            assert [o["identifier"] for o in listed] == [state["ident"], state["late"]]
            assert [o["identifier"] for o in (await client.get(
                "/orders", params={"status": "finished"})).json()] == [state["ident"]]

    asyncio.run(first_run())
    asyncio.run(second_run())


def test_bad_input_tenants_follow_tokens_and_the_handle(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _plant(_settings(tmp_path, ids=True)) as (node, client, _):
            await until(lambda: _lines_exist(node), 10, "the lines' births")
            assert (await client.put("/order-products/pump", json=PRODUCT)).status_code == 201
            bad_line = {**PRODUCT, "name": "nowhere",
                        "routing": [{"id": "x", "line": "Mars/L9", "cycle_s": 1}]}
            r = await client.put("/order-products/nowhere", json=bad_line)
            assert r.status_code == 409 and "no line 'Mars/L9'" in r.json()["detail"]
            cases = [
                ({"product": "pump", "quantity": 1, "options": {"motor": "11kW",
                                                                "seal": "NBR"}},
                 "rule_violated", "options", "R1"),
                ({"product": "pump", "quantity": 1, "options": {"seal": "NBR", "paint": "red"}},
                 "invalid_configuration", "options.paint", "unknown option 'paint'"),
                ({"product": "pump", "quantity": 1, "options": {"seal": "PTFE"}},
                 "invalid_configuration", "options.seal", "unknown choice 'PTFE'"),
                ({"product": "pump", "quantity": 1}, "invalid_configuration", "options.seal",
                 "must be chosen"),
                ({"product": "valve", "quantity": 1}, "invalid_configuration", "product",
                 "unknown product 'valve'"),
                ({"product": "pump", "quantity": 0}, "invalid_input", "quantity", "quantity"),
                ({"product": "pump", "quantity": "many"}, "invalid_input", "quantity",
                 "quantity"),
                ({"product": "pump", "quantity": 1, "colour": "red"}, "invalid_input",
                 "colour", "colour"),
            ]
            for body, error, field, words in cases:
                r = await client.post("/orders", json=body)
                # The document's own checks answer 422; a schema-valid body that the product
                # refuses, 409.
                assert r.status_code == (422 if error == "invalid_input" else 409), (body, r.text)
                answer = r.json()
                assert (answer["error"], answer["field"]) == (error, field), answer
                assert words in answer["detail"], answer
            r = await client.post("/orders", json={"product": "pump", "quantity": 1,
                                                   "options": {"motor": "11kW", "seal": "NBR"}})
            assert r.json()["rule"] == {"id": "R1", "kind": "requires",
                                        "message": "an 11 kW motor needs a SiC seal"}
            r = await client.post("/orders", content=b"{not json",
                                  headers={"Content-Type": "application/json"})
            assert r.status_code in (400, 422) and r.json()["error"] == "invalid_input"

            placed = (await client.post("/orders", json={
                "product": "pump", "quantity": 1, "options": {"seal": "NBR"}})).json()
            other = (await client.post("/orders", json={
                "product": "pump", "quantity": 2, "options": {"seal": "SiC"}})).json()
            ident, follow = placed["order"]["identifier"], placed["follow_token"]
            # the identifier resolves (Handle) to the order's status URL
            values = IDS[node.tenant_id].store.get(ident)
            assert [v.data.decode() for v in values if v.type == "URL"] == [
                placed["status_url"]]
            # the follow token reads its own order only
            assert (await _order(client, ident, follow)).status_code == 200
            for wrong in ((other["order"]["identifier"], follow), ("88.100.5/ORDER-999999", follow),
                          (ident, "mno_" + "x" * 43)):  # 401 whether the order exists or not
                r = await _order(client, *wrong)
                assert r.status_code == 401 and r.json()["error"] == "unauthenticated"
            r = await client.get("/orders", headers={"Authorization": f"Bearer {follow}"})
            assert r.status_code == 401
            # another tenant's tokens see nothing of it
            foreign = node.registry.ensure_tenant("globex").id
            viewer, _ = node.registry.create_token(foreign, "viewer", "globex")
            assert (await _order(client, ident, viewer)).status_code == 404
            r = await client.get("/orders", headers={"Authorization": f"Bearer {viewer}"})
            assert r.status_code == 200 and r.json() == []
            r = await client.get("/order-products",
                                 headers={"Authorization": f"Bearer {viewer}"})
            assert r.json() == []
            # a viewer of the tenant reads but does not place
            own, _ = node.registry.create_token(node.tenant_id, "viewer", "reader")
            assert (await _order(client, ident, own)).status_code == 200
            r = await client.post("/orders", json={"product": "pump", "quantity": 1,
                                                   "options": {"seal": "NBR"}},
                                  headers={"Authorization": f"Bearer {own}"})
            assert r.status_code == 403
            assert (await _order(client, "88.100.5/ORDER-999999")).status_code == 404
            await _cli(node, client, tmp_path, follow, ident)

    asyncio.run(scenario())


def test_the_demo_order_stream_makes_progress_on_the_simulated_lines(tmp_path: Path) -> None:
    """demo_orders on the demo's six lines (one machine each): the pump is defined once its
    lines exist, orders are placed (one refused with its rule), their operations count parts."""
    console = Console(file=io.StringIO(), width=200)

    async def scenario() -> None:
        async with _plant(_settings(tmp_path), (2, 3, 1)) as (node, client, _):
            stream = asyncio.create_task(demo_orders.order_stream(console, node, every_s=0.2))
            try:
                for _ in range(300):
                    orders = (await client.get("/orders")).json()
                    if any(o["operations"][0]["good"] > 0 for o in orders) and \
                            "refused" in console.file.getvalue():  # type: ignore[attr-defined]
                        break
                    await asyncio.sleep(0.1)
            finally:
                stream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream
            assert any(o["operations"][0]["good"] > 0 for o in orders), orders
            # Read again now that the stream has stopped: it may have placed one more order
            # between the last read and its cancellation.
            orders = (await client.get("/orders")).json()
            assert all(o["identifier"].startswith("88.100.5/ORDER-") for o in orders)
            table = demo_orders.orders_table(node.ordering.service, node.tenant_id)  # type: ignore[union-attr]
            assert table.row_count == min(len(orders), 8)
        out = console.file.getvalue()  # type: ignore[attr-defined]
        assert "orders: product pump-p200 defined" in out
        assert "refused: options: rule R1-motor-seal (requires)" in out, out

    asyncio.run(scenario())
