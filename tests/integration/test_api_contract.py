"""The API holds to its OpenAPI document (issue 10): schemathesis, with all its checks, against
a node's API served by uvicorn on a free port, over a real SQLite registry and DuckDB store,
with a node-wide admin token and with a tenant admin token.

Every phase runs (examples, coverage, fuzzing, stateful): schema-valid requests are accepted,
schema-violating ones refused, every status and body is documented, 405 answers carry the
path's ``Allow``. The short run is small and seeded (well under a minute); the ``slow`` run
holds 100 examples per operation, also seeded, so that the suite's answer does not depend on
the day it runs. ``MILLNET_CONTRACT_EXAMPLES=300`` runs more, ``MILLNET_CONTRACT_SEED=random``
a new seed each time (the way to look for new failures; each seed that found one became a
regression test of its own).

A failure keeps everything needed to reproduce it: schemathesis' full output, its JUnit and
pytest reports and what the app logged at ERROR (every 500 with its traceback) stay in the
test's temporary directory; the message names them, the seed and the command to run it again,
and shows the failures with their curl reproductions.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.test_api_world import World, world
from tests.support.webserver import ThreadedServer

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = int(os.environ.get("MILLNET_CONTRACT_EXAMPLES", "10"))
# The long run's seed: fixed unless given; "random" picks one (each failure message names the
# one it used).
SEED = os.environ.get("MILLNET_CONTRACT_SEED", "1212164888")
LONG = int(os.environ.get("MILLNET_CONTRACT_EXAMPLES", "100"))

pytestmark = pytest.mark.skipif(not SCHEMATHESIS.exists(),
                                reason="schemathesis not installed (the dev extra)")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:
    with world(tmp_path_factory.mktemp("contract")) as w, ThreadedServer(w.client.app) as server:
        for site, prefix in ((w.acme, "88.100.5"), (w.globex, "88.200")):
            w.registry.set_identifier_prefixes(site.tenant_id, [prefix])
        yield w, server.url


# The stateful phase follows the document's links only: the links schemathesis infers follow
# nullable fields too (a node-wide token's tenant_id) and send "None" as an id. Half of the
# identifier links use handles under the tenants' prefixes (the rest are refused, 403).
_CONFIG = """\
[phases.stateful.inference]
algorithms = ["location-headers"]

[dictionaries.handles]
values = ["88.100.5/EQ-1", "88.100.5/EQ-2", "88.100.5/P-1", "88.200/EQ-1", "88.200/P-1"]

[[operations]]
include-name = "DELETE /api/v1/tokens/{token_id}"
parameters = { "path.token_id" = DECOY }

[[operations]]
include-name-regex = "^PUT .*/identifier$"
parameters = { "body.handle" = { dictionary = "handles", probability = 0.5 } }
"""


def _token(w: World, who: str) -> str:
    return w.node_admin if who == "node-admin" else w.acme.tokens["admin"]


def _run(w: World, url: str, who: str, tmp: Path, examples: int, seed: int | None) -> None:
    token = _token(w, who)
    # Generated ids would revoke the very token the run uses (token 1 is a world token): the
    # DELETE of a token always names a decoy of the caller's tenant instead.
    decoy = w.registry.create_token(w.acme.tenant_id, "viewer", f"decoy-{who}")[1].id
    config = tmp / "schemathesis.toml"
    # The stateful phase follows the document's links only: the links schemathesis infers
    # follow nullable fields too (a node-wide token's tenant_id) and send "None" as an id.
    config.write_text(_CONFIG.replace("DECOY", str(decoy)))
    # A random run still has a seed, chosen here so that the failure message can name it.
    seed = random.randrange(2**31) if seed is None else seed
    command = [str(SCHEMATHESIS), "--config-file", str(config), "--no-color", "run",
               f"{url}/openapi.json", "--checks", "all", "--max-examples", str(examples),
               "--workers", "1", "-H", f"Authorization: Bearer {token}", "--seed", str(seed),
               "--report", "junit,pytest", "--report-dir", str(tmp / "report")]
    output = tmp / "schemathesis.log"
    with _server_errors(tmp / "server-errors.log") as errors, output.open("w") as out:
        try:
            code = subprocess.run(command, cwd=tmp, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=_timeout(examples) - 30, check=False).returncode
        except subprocess.TimeoutExpired:
            code = -1
    if code != 0 or errors.stat().st_size:
        pytest.fail(_failure_message(output, errors, tmp / "report", seed, examples, who),
                    pytrace=False)
    # The run tested the API, not its 401s: the token still works.
    me = w.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text


def _timeout(examples: int) -> int:
    """Seconds a run of this many examples per operation may take (both tokens take about a
    second per example on two shared cores)."""
    return max(300, 3 * examples + 120)


@contextmanager
def _server_errors(path: Path) -> Iterator[Path]:
    """What the app logs at ERROR (every 500 with its traceback) while the run lasts."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.ERROR)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logger = logging.getLogger("millnet")
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()


def _failure_message(output: Path, errors: Path, report: Path, seed: int, examples: int,
                     who: str) -> str:
    """Where everything is, how to run it again, and the failures (the full output can be
    megabytes; the failures section is at its end)."""
    text = output.read_text(encoding="utf-8", errors="replace")
    cut = text.find(" FAILURES ")
    failures = text[text.rfind("\n", 0, cut) + 1:] if cut >= 0 else text[-8_000:]
    if len(failures) > 30_000:
        failures = failures[:25_000] + "\n[...]\n" + failures[-5_000:]
    server = errors.read_text(encoding="utf-8", errors="replace")
    return "\n".join([
        f"schemathesis ({who}, seed {seed}, {examples} examples) failed; full output: {output}",
        f"reports (JUnit, pytest reproduction): {report}",
        f"server errors logged: {errors} ({len(server)} characters)",
        f"again: MILLNET_CONTRACT_SEED={seed} MILLNET_CONTRACT_EXAMPLES={examples} "
        "pytest tests/integration/test_api_contract.py -m slow",
        failures,
        server[-10_000:]])


@pytest.mark.parametrize("who", ["node-admin", "tenant-admin"])
def test_the_api_holds_to_its_document(node: tuple[World, str], who: str,
                                       tmp_path: Path) -> None:
    w, url = node
    _run(w, url, who, tmp_path, EXAMPLES, seed=10)


@pytest.mark.slow
@pytest.mark.timeout(_timeout(LONG))
@pytest.mark.parametrize("who", ["node-admin", "tenant-admin"])
def test_the_api_holds_to_its_document_at_length(node: tuple[World, str], who: str,
                                                 tmp_path: Path) -> None:
    w, url = node
    _run(w, url, who, tmp_path, LONG, seed=None if SEED == "random" else int(SEED))
