"""``millnet id serve --database postgresql+psycopg://...``: the identifier node on PostgreSQL
(the session's own server), written over HTTP and read over UDP, TCP and HTTP by the general
path (the fast paths read SQLite files only)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from millnet.connectivity.broker import free_port
from millnet.identifiers.hierarchy.client import Server, request, resolution_request
from millnet.idnode import IdServerOptions, identifier_node
from millnet.protocols.handle import ResolutionResponse, ResponseCode
from tests.integration.registry_fixtures import _postgres_database
from tests.servers import Postgres

SECRET = "postgres-admin-secret"
AUTH = ("300%3A88.100.5/ADMIN", SECRET)


def test_an_identifier_node_on_postgresql(tmp_path: Path, postgres_server: Postgres) -> None:
    secret = tmp_path / "admin.secret"
    secret.write_text(SECRET)
    for url in _postgres_database(postgres_server):
        opts = IdServerOptions("88.100.5", tmp_path / "node", secret, "127.0.0.1", free_port(),
                               free_port(), 0, database=url)

        async def scenario(opts: IdServerOptions = opts) -> None:
            async with identifier_node(opts) as node, httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{node.http_port}") as http:
                assert node.store.engine.dialect.name == "postgresql"
                body = {"values": [{"index": 1, "type": "URL",
                                    "data": {"format": "string",
                                             "value": "https://plant.example/p/1"}}]}
                created = await http.put("/api/handles/88.100.5/PUMP-1", json=body, auth=AUTH,
                                         params={"overwrite": "false"})
                assert created.status_code == 201, created.text
                got = (await http.get("/api/handles/88.100.5/PUMP-1")).json()
                assert got["values"][0]["data"]["value"] == "https://plant.example/p/1"
                where = Server("127.0.0.1", node.udp_port, node.tcp_port)
                for udp in (True, False):
                    answer = await request(resolution_request("88.100.5/PUMP-1"), where,
                                           udp=udp)
                    assert isinstance(answer.body, ResolutionResponse)
                    assert answer.body.values[0].data == b"https://plant.example/p/1"
                missing = await request(resolution_request("88.100.5/NOPE"), where)
                assert missing.response_code == ResponseCode.HANDLE_NOT_FOUND
            assert not (tmp_path / "node" / "identifiers.sqlite").exists()

        asyncio.run(scenario())


def test_an_unsupported_database_url_names_the_option(tmp_path: Path) -> None:
    import pytest

    from millnet.errors import ConfigError
    from millnet.idnode import open_identifier_node

    secret = tmp_path / "admin.secret"
    secret.write_text(SECRET)
    opts = IdServerOptions("88.100.5", tmp_path / "node", secret, "127.0.0.1", 2641, 2641, 0,
                           database="mysql://ids@db.plant.example/ids")
    with pytest.raises(ConfigError, match="unsupported database 'mysql'") as caught:
        open_identifier_node(opts)
    assert caught.value.key == "identifiers.database"
