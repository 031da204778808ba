"""Nothing lost, nothing duplicated: a parent and a child as real processes, each killed with
SIGKILL mid-stream and restarted; at the end the parent has applied every event exactly once
(issue 13)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from millnet.federation.enroll import issue_token
from millnet.federation.schema import UP, federation_inbox_state, federation_outbox_state
from tests.support.federation import effects, node

ROOT = Path(__file__).resolve().parents[2]
COUNT = 3000
RATE = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(*args: str, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "tests.support.fednode", *args], cwd=ROOT,
                            stdout=out, stderr=subprocess.STDOUT)


def kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def child_position(path: Path) -> tuple[int, int]:
    """(events produced, events still waiting) from the child's database."""
    from millnet.db.engine import create_db_engine

    if not path.exists():
        return 0, 0
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            row = conn.execute(select(federation_outbox_state.c.last_seq,
                                      federation_outbox_state.c.depth)
                               .where(federation_outbox_state.c.peer == UP)).first()
    except OperationalError:  # the child is still migrating its new database
        return 0, 0
    finally:
        engine.dispose()
    return (int(row.last_seq), int(row.depth)) if row else (0, 0)


def wait_produced(path: Path, at_least: int, deadline: float) -> None:
    while child_position(path)[0] < at_least:
        assert time.monotonic() < deadline, f"the child produced {child_position(path)[0]}"
        time.sleep(0.05)


def test_kill_9_of_either_side_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    parent_dir, child_dir = tmp_path / "parent", tmp_path / "child"
    parent_dir.mkdir()
    child_dir.mkdir()
    links = node(parent_dir, "prov-32", "secondary")
    token = issue_token(links.engine, "plant-a", "enterprise", "320500", "C38", "88.100.5", 600)
    links.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "nodes.log"
    deadline = time.monotonic() + 240  # four process starts on two busy cores

    par = start("parent", str(parent_dir), str(port), log=log)
    wait_port(port, deadline)
    kid = start("child", str(child_dir), url, token, str(COUNT), str(RATE), log=log)
    try:
        db = child_dir / "plant-a.sqlite"
        wait_produced(db, 600, deadline)
        kill(par)  # the parent dies mid-stream: the child keeps producing and retries
        time.sleep(1.0)
        par = start("parent", str(parent_dir), str(port), log=log)
        wait_port(port, deadline)
        wait_produced(db, 1500, deadline)
        assert child_position(db)[0] < COUNT
        kill(kid)  # the child dies mid-stream
        kid = start("child", str(child_dir), url, token, str(COUNT), str(RATE), log=log)
        # 300 more, or all of them: on a busy machine the child may have got near the end
        # before it was killed (and "300 more" was then more than it will ever produce).
        wait_produced(db, min(child_position(db)[0] + 300, COUNT), deadline)
        kill(par)  # and the parent once more, while it applies
        par = start("parent", str(parent_dir), str(port), log=log)
        while time.monotonic() < deadline:
            produced, waiting = child_position(db)
            if produced == COUNT and waiting == 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"not drained: {child_position(db)}"
                                 f"\n{log.read_text()[-3000:]}")
    finally:
        for proc in (kid, par):
            if proc.poll() is None:
                kill(proc)
    check = node(parent_dir, "prov-32", "secondary")
    try:
        ids = [e[0] for e in effects(check.engine)]
        with check.engine.begin() as conn:
            state = conn.execute(select(federation_inbox_state)).one()
    finally:
        check.close()
    assert len(ids) == COUNT
    assert set(ids) == {f"e-{i}" for i in range(1, COUNT + 1)}
    assert (state.applied_seq, state.rejected) == (COUNT, 0)
