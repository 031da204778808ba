"""A federation node as a process, for crash tests: ``python -m tests.support.fednode``.

``parent DIR PORT``: a secondary node serving the federation routes on 127.0.0.1:PORT, applying
``test.event`` messages into an ``effects`` table whose primary key is the event id (a second
application would be a counted rejection, never a silent duplicate).

``child DIR PARENT_URL TOKEN COUNT RATE``: an enterprise node that enrolls (once; the parent's
key is then pinned in its database), then produces events ``e-1`` .. ``e-COUNT`` at RATE per
second into its outbox while its link sends them. The next event number is the outbox's last
seq + 1, read from the database at start, so a killed child resumes where its commits ended.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy import select

from millnet.federation.enroll import enroll, pinned_parent
from millnet.federation.links import FederationLinks
from millnet.federation.schema import UP, federation_outbox_state
from millnet.serving import embedded_server, listening_socket
from tests.support.federation import EVENT, node, record_effect

FAST = {"heartbeat_s": 0.5, "retry_first_s": 0.05, "retry_max_s": 0.5,
        "request_timeout_s": 5.0}


def parent(data: Path, port: int) -> None:
    links = node(data, "prov-32", "secondary", **FAST)
    links.inbox.register(EVENT, record_effect)
    server = embedded_server(links.app(), log_level="warning")
    asyncio.run(server.serve(sockets=[listening_socket("127.0.0.1", port)]))


def produced(links: FederationLinks) -> int:
    with links.engine.begin() as conn:
        last = conn.execute(select(federation_outbox_state.c.last_seq)
                            .where(federation_outbox_state.c.peer == UP)).scalar()
    return int(last or 0)


async def produce(links: FederationLinks, count: int, rate: float) -> None:
    assert links.outbox_up is not None
    n = produced(links)
    step = 0.02
    per_step = max(1, round(rate * step))
    while n < count:
        batch = [(EVENT, {"id": f"e-{i}"}, None) for i in range(n + 1, min(count, n + per_step)
                                                              + 1)]
        await asyncio.to_thread(links.outbox_up.enqueue_many, batch)
        n += len(batch)
        await asyncio.sleep(step)


async def child_main(data: Path, parent_url: str, token: str, count: int, rate: float) -> None:
    links = node(data, "plant-a", "enterprise", **FAST)
    with links.engine.begin() as conn:
        pinned = pinned_parent(conn) is not None
    if not pinned:
        enroll(parent_url, token, links.identity, links.engine)
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(links.run())
        tasks.create_task(produce(links, count, rate))


def main(argv: list[str]) -> None:
    if argv[0] == "parent":
        parent(Path(argv[1]), int(argv[2]))
    elif argv[0] == "child":
        asyncio.run(child_main(Path(argv[1]), argv[2], argv[3], int(argv[4]), float(argv[5])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
