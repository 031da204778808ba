"""Browser tests: Playwright (Python) driving Debian's chromium headless against a real node.

Playwright's own browsers are never downloaded: the tests launch ``/usr/bin/chromium``
(``apt-get install chromium``; scripts/test installs it when missing) and skip, saying so, when
it is absent. One node per module (``plant.py``: a small simulated plant feeding it); every
test opens its own tab (sessionStorage, hence the login, is per tab). Screenshots go to
``tests/browser/artifacts/`` (gitignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from millnet.connectivity.broker import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).parent / "artifacts"
ROOT = Path(__file__).parents[2]
START_LIMIT_S = 60.0


def ready_line(proc: subprocess.Popen[str], what: str) -> Any:
    """The JSON line a test node prints once it serves (its ports, tokens), within
    ``START_LIMIT_S``; a node that exits or takes longer fails the test, naming it."""
    assert proc.stdout is not None
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("{"):
                return json.loads(line)
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited ({proc.returncode})")
    raise AssertionError(f"{what} did not start within {START_LIMIT_S} s")

if not CHROMIUM.exists():
    pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium "
                "(apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright  # noqa: E402


@dataclass
class Plant:
    """The node of ``plant.py`` as a process: stopped and started again on the same port and
    data directory (the same tokens and ids)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/console/"

    @property
    def tokens(self) -> dict[str, str]:
        tokens: dict[str, str] = self.info["tokens"]
        return tokens

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.browser.plant", "--data-dir", str(self.data_dir),
             "--port", str(self.port)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.info = ready_line(self.proc, "the plant's node")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # the API goes away at once
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plant]:
    node = Plant(tmp_path_factory.mktemp("plant") / "node")
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser, tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh profile per test (no storage, no cache shared between tests)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    # A script or style the policy blocked is a console error, not a page error.
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and
           "Content Security Policy" in msg.text else None)
    yield tab
    assert not errors, f"uncaught errors or policy violations in the page: {errors}"


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def log_in(page: Page, plant: Plant, role: str = "operator") -> None:
    page.goto(plant.url)
    page.get_by_label("API token").fill(plant.tokens[role])
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("navigation", name="Main").wait_for()
