"""The API holds to its OpenAPI document (issue 10): schemathesis, with all its checks, against
a node's API served by uvicorn on a free port, over a real SQLite registry and DuckDB store,
with a node-wide admin token and with a tenant admin token.

The field routes are covered too (issue 11): sources, device tokens and HTTP ingest run over a
real ingest pipeline and source host, in uvicorn's event loop as in a node. Generated sources
connect nowhere but a closed port of this machine: the run pins every ``host`` and ``endpoint``
it writes to 127.0.0.1 and a port bound here without listening (connections are refused), and
the host's adapters are built against that port whatever the body said (the coverage phase
writes boundary values of its own, ``opc.tcp://0``: ``Pinned.unpinned`` lists them, and they too
reach only the closed port).

Every phase runs (examples, coverage, fuzzing, stateful): schema-valid requests are accepted,
schema-violating ones refused, every status and body is documented, 405 answers carry the
path's ``Allow``. The short run is small and seeded (well under a minute); the ``slow`` run
holds 30 examples per operation by default, also seeded, so that the suite's answer does not
depend on the day it runs and the suite stays within its time. ``MILLNET_CONTRACT_EXAMPLES=300``
runs more, ``MILLNET_CONTRACT_SEED=random``
a new seed each time (the way to look for new failures; each seed that found one became a
regression test of its own).

A failure keeps everything needed to reproduce it: schemathesis' full output, its JUnit and
pytest reports and what the app logged at ERROR (every 500 with its traceback) stay in the
test's temporary directory; the message names them, the seed and the command to run it again,
and shows the failures with their curl reproductions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from millnet.connectivity.adapter import Adapter, FieldSink
from millnet.connectivity.modbus import ModbusSpec
from millnet.connectivity.opcua import OpcUaSpec
from millnet.serving import embedded_server, listening_socket
from millnet.sources import KINDS, BuildContext, Kind
from tests.integration.test_api_world import World, world

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = int(os.environ.get("MILLNET_CONTRACT_EXAMPLES", "10"))
# The long run's seed: fixed unless given; "random" picks one (each failure message names the
# one it used).
SEED = os.environ.get("MILLNET_CONTRACT_SEED", "1212164888")
LONG = int(os.environ.get("MILLNET_CONTRACT_EXAMPLES", "30"))

pytestmark = pytest.mark.skipif(not SCHEMATHESIS.exists(),
                                reason="schemathesis not installed (the dev extra)")


class Pinned:
    """Source kinds whose adapters reach only ``port`` on 127.0.0.1, a port bound without
    listening: a generated source connects nowhere (its connections are refused)."""

    def __init__(self) -> None:
        self.closed = socket.socket()
        self.closed.bind(("127.0.0.1", 0))  # bound, never listening: connections refused
        self.port = int(self.closed.getsockname()[1])
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/"
        self.unpinned: list[str] = []

    def kinds(self) -> dict[str, Kind]:
        return {"opcua": Kind(OpcUaSpec, self._opcua), "modbus": Kind(ModbusSpec, self._modbus)}

    def _opcua(self, spec: OpcUaSpec, sink: FieldSink, ctx: BuildContext) -> Adapter:
        if spec.endpoint != self.endpoint:
            self.unpinned.append(f"{spec.name}: {spec.endpoint}")
            spec = spec.model_copy(update={"endpoint": self.endpoint})
        return KINDS["opcua"].build(spec, sink, ctx)

    def _modbus(self, spec: ModbusSpec, sink: FieldSink, ctx: BuildContext) -> Adapter:
        if (spec.host, spec.port) != ("127.0.0.1", self.port):
            self.unpinned.append(f"{spec.name}: {spec.host}:{spec.port}")
            spec = spec.model_copy(update={"host": "127.0.0.1", "port": self.port})
        return KINDS["modbus"].build(spec, sink, ctx)


class NodeServer:
    """The world's app under uvicorn in a thread, with its ingest pipeline, source host and
    issue-12 services (alarms, notifications, KPIs, roll-ups) running in the same event loop
    (as ``node.running`` runs them)."""

    def __init__(self, w: World) -> None:
        assert w.field is not None
        self.field = w.field
        self.runs = w.services.runs()
        self.sock = listening_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = embedded_server(w.client.app)
        self.thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        field = self.field
        async with asyncio.TaskGroup() as tg:
            pipe = tg.create_task(field.pipeline.run())
            services = [tg.create_task(run()) for run in self.runs]
            async with field.host:
                await self.server.serve(sockets=[self.sock])
            await field.pipeline.drain()
            pipe.cancel()
            for task in services:
                task.cancel()

    def __enter__(self) -> NodeServer:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            threading.Event().wait(0.01)
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def pinned() -> Iterator[Pinned]:
    found = Pinned()
    yield found
    found.closed.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory,
         pinned: Pinned) -> Iterator[tuple[World, str]]:
    with (world(tmp_path_factory.mktemp("contract"), field=True, kinds=pinned.kinds(),
                run_services=False) as w,
          NodeServer(w) as server):
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

[dictionaries.hosts]
values = ["127.0.0.1"]

[dictionaries.ports]
values = [CLOSED_PORT]

[dictionaries.endpoints]
values = ["opc.tcp://127.0.0.1:CLOSED_PORT/"]

[[operations]]
include-name = "POST /api/v1/sources"
[operations.parameters]
"body.host" = { dictionary = "hosts" }
"body.port" = { dictionary = "ports" }
"body.endpoint" = { dictionary = "endpoints" }
# A source spec is also checked as a whole (overlapping registers, poll groups, backoffs,
# deadbands: the 400 the document describes), which no JSON Schema states: a schema-valid
# spec may answer 400 here, and only here.
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", 400, 401, 403, 404, 409, 429, "5xx"]

# Checks across fields and parameters that no JSON Schema states, each answered 400 naming the
# field, and only on these operations: a rule is parsed as a whole, as in a rule file (its
# kind decides which keys it needs); since must precede until and the period is bounded
# (alarms.performance_max_days); a shelve gives exactly one of duration_s and until, within
# the node's alarms.max_shelve_s; a KPI range spans at most 400 days.
[[operations]]
include-name-regex = "^(POST /api/v1/rules|PUT /api/v1/rules/[{]rule_id[}])$"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", 400, 401, 403, 404, 409, 429, "5xx"]

[[operations]]
include-name-regex = "^(GET /api/v1/alarms/performance|POST /api/v1/alarms/[{]alarm_id[}]/shelve)$"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", 400, 401, 403, 404, 409, 429, "5xx"]

[[operations]]
include-name = "GET /api/v1/kpi"
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", 400, 401, 403, 404, 409, 429, "5xx"]

[[operations]]
include-name = "DELETE /api/v1/device-tokens/{token_id}"
parameters = { "path.token_id" = DEVICE_DECOY }

# HTTP ingest takes device tokens only: this one is bound to a device of acme.
[[operations]]
include-name = "POST /api/v1/ingest"
headers = { Authorization = "Bearer DEVICE_TOKEN" }
"""


def _token(w: World, who: str) -> str:
    return w.node_admin if who == "node-admin" else w.acme.tokens["admin"]


def _config(w: World, who: str, port: int) -> str:
    # Generated ids would revoke the very token the run uses (token 1 is a world token): the
    # DELETE of a token always names a decoy of the caller's tenant instead; so for device
    # tokens (the ingest operation's own tests use theirs).
    decoy = w.registry.create_token(w.acme.tenant_id, "viewer", f"decoy-{who}")[1].id
    assert w.field is not None
    device_decoy = w.field.source_store.create_device_token(
        w.acme.tenant_id, f"decoy-{who}", None, None)[1].id
    device_token = w.field.source_store.create_device_token(
        w.acme.tenant_id, f"contract-{who}", "plant1/contract/line1/sensor-1", None)[0]
    return (_CONFIG.replace("DEVICE_DECOY", str(device_decoy)).replace("DECOY", str(decoy))
            .replace("CLOSED_PORT", str(port)).replace("DEVICE_TOKEN", device_token))


def _run(w: World, url: str, who: str, tmp: Path, examples: int, seed: int | None,
         pinned: Pinned) -> None:
    token = _token(w, who)
    config = tmp / "schemathesis.toml"
    config.write_text(_config(w, who, pinned.port))
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
                                       tmp_path: Path, pinned: Pinned) -> None:
    w, url = node
    _run(w, url, who, tmp_path, EXAMPLES, seed=10, pinned=pinned)


@pytest.mark.slow
@pytest.mark.timeout(_timeout(LONG))
@pytest.mark.parametrize("who", ["node-admin", "tenant-admin"])
def test_the_api_holds_to_its_document_at_length(node: tuple[World, str], who: str,
                                                 tmp_path: Path, pinned: Pinned) -> None:
    w, url = node
    _run(w, url, who, tmp_path, LONG, seed=None if SEED == "random" else int(SEED),
         pinned=pinned)
