"""The console's part-B pages in a real browser (issue 14): an operator acknowledges an alarm (the
state changes in the page and through the API) and a bad shelve duration is refused next to its
field, a viewer gets no action buttons; the OEE table shows the plant's lines; an identifier
registered through the node's Handle API resolves in the page, and an operator records and links
a product; a national node's situation, advisories and orders; no page overflows at 390 px.

Two nodes (``pages_nodes.py``): the browser plant with the identifier service beside it, and a
national node seeded with a small situation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import ROOT, Plant, log_in, ready_line, screenshot

RULE = "browser-spindle-warm"
XSS = "<script>alert(1)</script>"


@dataclass
class PagesNode(Plant):
    """A node of ``pages_nodes.py`` (``mode``: plant or national) as a process."""

    mode: str = "plant"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.browser.pages_nodes", self.mode, "--data-dir",
             str(self.data_dir), "--port", str(self.port)], cwd=ROOT, stdout=subprocess.PIPE,
            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait(self) -> None:
        assert self.proc is not None
        self.info = ready_line(self.proc, f"the {self.mode} node")

    def api(self, role: str = "admin") -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}/api/v1", timeout=10,
                            headers={"Authorization": f"Bearer {self.tokens[role]}"})


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PagesNode]]:
    """Both nodes, started at once (each takes seconds to import and start)."""
    root = tmp_path_factory.mktemp("pages")
    started = {mode: PagesNode(root / mode, mode=mode) for mode in ("plant", "national")}
    try:
        for node in started.values():
            node.start()
        for node in started.values():
            node.wait()
        with started["plant"].api() as admin:  # a rule that fires on every CNC at once
            made = admin.post("/rules", params={"tenant_id": started["plant"].info["tenant_id"]},
                              json={"name": RULE, "kind": "threshold", "priority": "high",
                                    "point": "Spindle/Temperature", "above": 1,
                                    "message": "{device}: spindle at {value:.1f} degC",
                                    "applies_to": {"devices": ["CNC-*"]}})
            assert made.status_code == 201, made.text
        yield started
    finally:
        for node in started.values():
            node.stop()


@pytest.fixture
def plant(nodes: dict[str, PagesNode]) -> PagesNode:
    return nodes["plant"]


@pytest.fixture
def national(nodes: dict[str, PagesNode]) -> PagesNode:
    return nodes["national"]


def _no_overflow(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at 390 px"
    unlabelled = page.evaluate("""() => [...document.querySelectorAll(
        'input, select, button, [role=img]')].filter(el => !el.closest('[hidden]')).filter(el =>
          !(el.labels && el.labels.length) && !el.getAttribute('aria-label') &&
          !el.textContent.trim()).map(el => el.outerHTML.slice(0, 80))""")
    assert unlabelled == [], "every control has a label"


def _alarm_row(page: Page, device: str) -> Any:
    return page.locator("tr[data-alarm]", has=page.get_by_role("cell", name=RULE, exact=True)
                        ).filter(has_text=device)


def _open_alarms(page: Page, plant: PagesNode, role: str) -> None:
    log_in(page, plant, role)
    page.get_by_role("link", name="Alarms").click()
    expect(page.get_by_role("heading", name="Alarms", level=1)).to_be_visible()
    expect(page.locator("tr[data-alarm]").filter(has_text=RULE).first).to_be_visible(
        timeout=20_000)


def test_an_operator_acknowledges_an_alarm(page: Page, plant: PagesNode) -> None:
    _open_alarms(page, plant, "operator")
    expect(page.locator(".figures")).to_contain_text("Assessment")  # EEMUA 191 figures
    row = _alarm_row(page, "CNC-102")
    expect(row.locator(".alarm-state")).to_have_text("active, unacknowledged")
    alarm_id = int(row.get_attribute("data-alarm") or "0")
    row.get_by_role("button", name=re.compile("^Acknowledge")).focus()
    page.keyboard.press("Enter")  # by keyboard alone: the form opens with its field focused
    expect(page.get_by_label("Comment (optional)")).to_be_focused()
    page.keyboard.type("seen from the browser")
    page.keyboard.press("Enter")
    expect(page.locator(f'tr[data-alarm="{alarm_id}"] .alarm-state')).to_have_text(
        "active, acknowledged")
    screenshot(page, "console-alarms")
    with plant.api("operator") as client:
        alarm = client.get(f"/alarms/{alarm_id}").json()
        trail = client.get(f"/alarms/{alarm_id}/events").json()
    assert (alarm["state"], alarm["acked_by"]) == ("acked_active", "browser-operator")
    assert trail[0]["comment"] == "seen from the browser"


def test_a_bad_shelve_duration_is_refused_next_to_its_field(page: Page,
                                                            plant: PagesNode) -> None:
    _open_alarms(page, plant, "operator")
    row = _alarm_row(page, "CNC-101")
    alarm_id = row.get_attribute("data-alarm")
    row.get_by_role("button", name=re.compile("^Shelve")).click()
    page.keyboard.press("Escape")  # closes the form, the focus back on its button
    expect(page.locator(".action-form")).to_have_count(0)
    expect(row.get_by_role("button", name=re.compile("^Shelve"))).to_be_focused()
    page.keyboard.press("Enter")
    duration = page.get_by_label("Shelve for")
    submit = page.locator("#alarm-action").get_by_role("button", name="Shelve")
    duration.fill("soon")
    submit.click()
    error = page.locator("#shelve-duration-error")
    expect(error).to_have_text("A duration is a number with s, m, h or d, e.g. 30m or 2h.")
    expect(duration).to_have_attribute("aria-invalid", "true")
    duration.fill("3d")  # valid syntax, above the node's limit (alarms.max_shelve_s, 1 day)
    submit.click()
    expect(error).to_contain_text("at most 86400")
    screenshot(page, "console-alarms-shelve-error")
    duration.fill("10m")
    page.get_by_label("Comment").fill("maintenance on the pump")
    submit.click()
    expect(page.locator(f'tr[data-alarm="{alarm_id}"] .alarm-state')).to_have_text("shelved")


def test_a_viewer_sees_alarms_without_actions(page: Page, plant: PagesNode) -> None:
    _open_alarms(page, plant, "viewer")
    expect(page.get_by_role("button", name=re.compile("^(Acknowledge|Shelve|Unshelve)"))
           ).to_have_count(0)
    expect(page.get_by_role("columnheader", name="Actions")).to_have_count(0)
    page.get_by_label("Priority").select_option("low")  # the filters query the API
    expect(page.get_by_text("No alarms match.")).to_be_visible()


def test_oee_shows_the_lines_of_the_current_shift(page: Page, plant: PagesNode) -> None:
    log_in(page, plant, "viewer")
    page.get_by_role("link", name="OEE").click()
    row = page.locator("tr[data-line]", has_text="Machining/L1")
    expect(row).to_be_visible()
    expect(page.get_by_label("Shift", exact=True)).to_contain_text("(current)")
    expect(row.locator("td").nth(1)).to_have_text(re.compile(r"^\d+(\.\d)? %$"))  # availability
    line_id = row.get_attribute("data-line")
    with plant.api("viewer") as client:
        kpis = client.get("/kpi", params={"level": "line", "asset_id": line_id}).json()
    performance = kpis["rows"][-1]["kpis"]["effectiveness"]
    if performance is None:  # null is a dash, never 0
        expect(row.locator("td").nth(2)).to_have_text("—")
    page.get_by_label("Shift", exact=True).select_option(label="Last 24 hours")
    expect(page.locator("#oee-note")).to_contain_text("last 24 hours")
    screenshot(page, "console-oee")


def test_resolve_an_identifier_and_link_a_product(page: Page, plant: PagesNode) -> None:
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    prefix, secret = plant.info["prefix"], plant.info["secret"]
    handle = f"{prefix}/PUMP-{plant.port}"
    made = httpx.put(f"{plant.info['handle_url']}/api/handles/{handle}",
                     auth=(f"300%3A{prefix}%2FADMIN", secret), timeout=10, json={"values": [
                         {"index": 1, "type": "URL", "data": "https://example.com/pumps/1"},
                         {"index": 2, "type": "DESC", "data": XSS}]})
    assert made.status_code in (200, 201), made.text
    log_in(page, plant, "operator")
    page.get_by_role("link", name="Identifiers").click()
    field = page.get_by_label("Identifier", exact=True).first
    field.fill("no-slash")
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator("#resolve-handle-error")).to_contain_text("the / is missing")
    field.fill(f"{prefix}/NOT-THERE")
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator("#resolve-handle-error")).to_contain_text("404")
    field.fill(handle)
    page.keyboard.press("Enter")
    values = page.locator("table.handle-values")
    expect(values.locator("tr", has_text="URL")).to_contain_text("https://example.com/pumps/1")
    expect(values.locator("tr", has_text="DESC").locator(".handle-data")).to_have_text(XSS)
    assert page.locator("main script").count() == 0
    screenshot(page, "console-identifier")
    # An operator records a product and links it; a foreign prefix is refused next to the field.
    page.get_by_label("Serial number").fill(f"SN-{plant.port}")
    page.get_by_label("Model").fill("P-200")
    page.locator("#product-handle").fill("99.1/X")
    page.get_by_role("button", name="Record and link").click()
    expect(page.locator("#product-handle-error")).to_contain_text("not linked")
    page.get_by_label("Serial number").fill(f"SN2-{plant.port}")
    page.locator("#product-handle").fill(handle)
    page.get_by_role("button", name="Record and link").click()
    expect(page.get_by_role("status").filter(has_text="linked to")).to_be_visible()
    expect(page.locator("table.products")).to_contain_text(handle)
    assert dialogs == []


def test_the_national_situation_advisories_and_orders(page: Page, national: PagesNode) -> None:
    with national.api("viewer") as client:
        assert "situation" in client.get("/me").json()["areas"]
    log_in(page, national, "viewer")  # no plant tree here: the console opens the situation
    expect(page.get_by_role("heading", name="Situation", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Plant")).to_have_count(0)
    expect(page.locator("#errors .error")).to_have_count(0)
    provinces = page.locator("table", has=page.locator("caption", has_text="By province"))
    expect(provinces.locator("tr", has_text="Jiangsu")).to_contain_text("10")
    expect(provinces.locator("tr", has_text="Guangdong")).to_be_visible()
    expect(page.locator("table", has=page.locator("caption", has_text="By severity"))
           ).to_contain_text("critical")
    expect(page.get_by_role("img", name=re.compile("^Events by province"))).to_be_visible()
    pending = page.locator("table.pending")
    expect(pending).to_contain_text("RO-2026-7")
    expect(pending).to_contain_text("ent-suzhou")
    page.get_by_label("Region").fill("3x")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#sit-region-error")).to_contain_text("2, 4 or 6 digits")
    screenshot(page, "console-situation")
    page.get_by_role("link", name="Advisories & orders").click()
    order = page.locator('tr[data-order="RO-2026-7"]')
    expect(order.locator("li", has_text="ent-gz")).to_contain_text("acknowledged")
    expect(order.locator("li", has_text="ent-suzhou")).to_contain_text("issued")
    expect(page.locator("table.advisories")).to_contain_text("S7-1200 <b>stop</b>")
    page.get_by_role("link", name="RO-2026-7").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Patch S7-1200")
    expect(page.locator("ol.audit")).to_contain_text("ent-gz")
    screenshot(page, "console-orders")


def test_a_national_admin_issues_an_advisory_and_is_told_what_is_wrong(
        page: Page, national: PagesNode) -> None:
    log_in(page, national, "admin")
    page.get_by_role("link", name="Advisories & orders").click()
    page.get_by_text("Issue an advisory").click()
    issue = page.get_by_role("button", name="Issue advisory")
    issue.click()
    expect(page.locator("#adv-id-error")).to_have_text("Enter an id.")
    expect(page.get_by_label("Advisory id", exact=True)).to_be_focused()
    page.get_by_label("Advisory id", exact=True).fill("CNVD 2026 9")
    page.locator("#adv-title").fill("Modbus gateway <i>reboot</i>")
    page.get_by_label("Affected products (CPE)").fill("siemens s7")
    issue.click()
    expect(page.locator("#adv-id-error")).to_contain_text("letters, digits")
    expect(page.locator("#adv-cpe-error")).to_contain_text("cpe:2.3:")
    page.get_by_label("Advisory id", exact=True).fill("CNVD-2026-9")
    page.get_by_label("Affected products (CPE)").fill(
        "cpe:2.3:h:moxa:mgate_5105:*:*:*:*:*:*:*:*")
    page.get_by_label("Severity").select_option("high")
    issue.click()
    expect(page.get_by_role("status").filter(has_text="CNVD-2026-9 issued.")).to_be_visible()
    expect(page.locator("table.advisories")).to_contain_text("Modbus gateway <i>reboot</i>")
    # An order to an enterprise that is not under this node: the API's refusal, by the field.
    page.get_by_text("Issue a rectification order").click()
    page.get_by_label("Order id").fill("RO-2026-9")
    page.get_by_label("Enterprises").fill("ent-nowhere")
    page.locator("#ord-title").fill("Patch the gateways")
    page.get_by_label("Action required").fill("Update the firmware")
    page.get_by_label("Deadline").fill("2099-01-31")
    page.get_by_role("button", name="Issue order").click()
    expect(page.locator("#ord-targets-error")).to_contain_text("not an enterprise under this node")
    screenshot(page, "console-issue")


def test_the_new_pages_fit_390_px_with_labelled_controls(page: Page, plant: PagesNode,
                                                         national: PagesNode) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, plant, "operator")
    for name, ready in (("alarms", "tr[data-alarm]"), ("oee", "tr[data-line]"),
                        ("identifiers", "#resolve-handle")):
        page.goto(f"{plant.url}#/{name}")
        expect(page.locator(ready).first).to_be_visible(timeout=20_000)
        _no_overflow(page)
        screenshot(page, f"console-{name}-390")
        if name == "alarms":  # with an action's form open
            page.locator("tr[data-alarm] button").first.click()
            expect(page.locator(".action-form")).to_be_visible()
            _no_overflow(page)
    log_in(page, national, "admin")  # the orders page with the issuing forms open
    for name, ready in (("situation", "table.pending"), ("orders", "table.orders")):
        page.goto(f"{national.url}#/{name}")
        expect(page.locator(ready)).to_be_visible()
        for summary in page.locator("main summary").all():
            summary.click()
        _no_overflow(page)
        screenshot(page, f"console-{name}-390")


def test_a_polling_page_rides_out_a_lost_connection(page: Page, national: PagesNode) -> None:
    """Last: it stops the national node. Opening an order finds no node: the banner comes, then
    goes by itself once the node is back, and the page shows the order without an uncaught
    error (the orders list polls on meanwhile)."""
    log_in(page, national, "viewer")
    page.goto(f"{national.url}#/orders")
    expect(page.locator("table.orders")).to_be_visible()
    banner = page.locator("#offline")
    national.stop()
    page.get_by_role("link", name="RO-2026-7").click()
    expect(banner).to_be_visible()
    national.start()
    national.wait()
    expect(banner).to_be_hidden(timeout=20_000)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Patch S7-1200")
