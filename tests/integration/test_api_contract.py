"""The API holds to its OpenAPI document (issue 10): schemathesis, with all its checks, against
a node's API served by uvicorn on a free port, over a real SQLite registry and DuckDB store,
with a node-wide admin token and with a tenant admin token.

Every phase runs (examples, coverage, fuzzing, stateful): schema-valid requests are accepted,
schema-violating ones refused, every status and body is documented, 405 answers carry the
path's ``Allow``. The default run is small and seeded (well under a minute);
``MILLNET_CONTRACT_EXAMPLES=300`` or the ``slow`` test run more, with a random seed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_api_world import World, world
from tests.support.webserver import ThreadedServer

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = int(os.environ.get("MILLNET_CONTRACT_EXAMPLES", "10"))

pytestmark = pytest.mark.skipif(not SCHEMATHESIS.exists(),
                                reason="schemathesis not installed (the dev extra)")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:
    with world(tmp_path_factory.mktemp("contract")) as w, ThreadedServer(w.client.app) as server:
        yield w, server.url


def _token(w: World, who: str) -> str:
    return w.node_admin if who == "node-admin" else w.acme.tokens["admin"]


def _run(w: World, url: str, who: str, tmp: Path, examples: int, seed: int | None) -> None:
    token = _token(w, who)
    # Generated ids would revoke the very token the run uses (token 1 is a world token): the
    # DELETE of a token always names a decoy of the caller's tenant instead.
    decoy = w.registry.create_token(w.acme.tenant_id, "viewer", f"decoy-{who}")[1].id
    config = tmp / "schemathesis.toml"
    config.write_text('[[operations]]\ninclude-name = "DELETE /api/v1/tokens/{token_id}"\n'
                      f'parameters = {{ "path.token_id" = {decoy} }}\n')
    command = [str(SCHEMATHESIS), "--config-file", str(config), "--no-color", "run",
               f"{url}/openapi.json", "--checks", "all", "--max-examples", str(examples),
               "--workers", "1", "-H", f"Authorization: Bearer {token}"]
    if seed is not None:
        command += ["--seed", str(seed)]
    done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout[-20_000:] + done.stderr[-2_000:]
    # The run tested the API, not its 401s: the token still works.
    me = w.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text


@pytest.mark.parametrize("who", ["node-admin", "tenant-admin"])
def test_the_api_holds_to_its_document(node: tuple[World, str], who: str,
                                       tmp_path: Path) -> None:
    w, url = node
    _run(w, url, who, tmp_path, EXAMPLES, seed=10)


@pytest.mark.slow
@pytest.mark.parametrize("who", ["node-admin", "tenant-admin"])
def test_the_api_holds_to_its_document_at_length(node: tuple[World, str], who: str,
                                                 tmp_path: Path) -> None:
    w, url = node
    _run(w, url, who, tmp_path, max(EXAMPLES, 200), seed=None)
