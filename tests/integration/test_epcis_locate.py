"""The trace finds another enterprise's node through the identifier hierarchy: the MN_TRACE
value of the identifier's handle, resolved by following referrals from the national node
(real handle servers on loopback, the hierarchy of test_handle_hierarchy)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from millnet.protocols.handle import HandleValue
from millnet.trace.settings import TracePeer, TraceSection
from millnet.tracing import TRACE_TYPE, locator
from tests.integration.test_handle_hierarchy import Clock, hierarchy

URL = "https://ent-5.example:8080/api/v1/trace/"


def test_the_trace_api_of_an_identifier_is_found_through_the_hierarchy(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with hierarchy(tmp_path, Clock()) as n:
            for name in ("enterprise", "enterprise2"):
                n[name].store.create_handle(
                    "88.100.5/STEEL-7", [HandleValue(1, TRACE_TYPE, URL.encode(), ttl=300)])
            national = n["national"].server
            locate = locator(TraceSection(resolver=f"127.0.0.1:{national.udp_port}",
                                          timeout_s=5.0))
            assert await locate("88.100.5/STEEL-7") == URL
            # A handle without MN_TRACE, and one that does not exist: no node known.
            assert await locate("88.100.5/PUMP-1") is None
            assert await locate("88.100.5/NOPE") is None
            # Configured peers come first, without asking the hierarchy.
            peers = locator(TraceSection(peers=(
                TracePeer(prefix="88.100.5", url="http://x/api/v1/trace/"),)))
            assert await peers("88.100.5/STEEL-7") == "http://x/api/v1/trace/"

    asyncio.run(scenario())
