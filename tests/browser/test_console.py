"""The web console in a real browser (issue 14, part A): log in, walk the tree to a device and
watch its live chart grow, markup in names stays text, API errors are shown, the
connection-lost banner comes and goes with the node, and the 390 px layout does not overflow."""

from __future__ import annotations

import json
import re
import urllib.request

from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import Plant, log_in, screenshot
from tests.browser.plant import XSS_DEVICE, XSS_TEXT


def _points(page: Page, point: str) -> int:
    chart = page.locator("article.point", has=page.get_by_role("heading", name=point,
                                                                exact=True)).locator(".chart")
    return int(chart.get_attribute("data-points") or "0")


def _grows(page: Page, point: str, by: int = 2, timeout_ms: int = 15_000) -> None:
    before = _points(page, point)
    page.wait_for_function(
        """([name, n]) => [...document.querySelectorAll('article.point')].some(a =>
             a.querySelector('h3').textContent === name &&
             Number(a.querySelector('.chart').dataset.points) >= n)""",
        arg=[point, before + by], timeout=timeout_ms)


def test_login_refuses_a_bad_token_and_accepts_a_good_one(page: Page, plant: Plant) -> None:
    page.goto(plant.url)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#token-error")).to_have_text("Enter a token.")
    page.get_by_label("API token").fill("mn_00000000_not-a-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#token-error")).to_contain_text("not valid")
    expect(page.get_by_label("API token")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("API token").fill(plant.tokens["viewer"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Plant")).to_be_visible()
    expect(page.locator("#who-text")).to_contain_text("browser-viewer · viewer")


def _admin(plant: Plant, method: str, path: str, body: object = None) -> object:
    request = urllib.request.Request(
        f"http://127.0.0.1:{plant.port}/api/v1{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {plant.tokens['admin']}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def test_a_revoked_token_returns_to_the_login_page(page: Page, plant: Plant) -> None:
    made = _admin(plant, "POST", "/tokens", {"name": "revoked-soon", "role": "viewer",
                                             "tenant_id": plant.info["tenant_id"]})
    assert isinstance(made, dict)
    page.goto(plant.url)
    page.get_by_label("API token").fill(made["token"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Plant")).to_be_visible()
    _admin(plant, "DELETE", f"/tokens/{made['info']['id']}")
    # The tree refreshes every 5 s: its next call answers 401.
    expect(page.get_by_role("heading", name="Log in")).to_be_visible(timeout=15_000)
    expect(page.locator(".login .notice")).to_contain_text("You were logged out")


def test_walk_the_tree_to_a_device_and_watch_its_chart(page: Page, plant: Plant) -> None:
    log_in(page, plant, "operator")
    tree = page.locator(".tree")
    # Roll-ups per site, area and line: the plant's four machines report a state.
    site = tree.locator("summary", has_text="Suzhou")
    expect(site.locator(".rollup")).to_contain_text(re.compile(r"[1-4] running"))
    tree.locator("summary", has_text="Machining").click()
    line = tree.locator("details", has=page.locator("summary", has_text="L1")).last
    line.locator("summary").first.click()
    # CNC-101's coolant pump is out: its low-pressure alarm counts at its line and above.
    expect(line.locator(".rollup").first).to_contain_text(re.compile(r"[1-9] alarms?"),
                                                          timeout=20_000)
    expect(site.locator(".rollup")).to_contain_text(re.compile(r"[1-9] alarms?"))
    screenshot(page, "console-tree")
    page.get_by_role("link", name="CNC-102").click()
    expect(page.get_by_role("heading", name="CNC-102", level=1)).to_be_visible()
    expect(page.locator(".crumbs")).to_contain_text("Suzhou/Machining/L1/CNC-102")
    _grows(page, "Spindle/Temperature")  # history, then samples pushed by the node
    _grows(page, "Spindle/Temperature")
    expect(page.locator("article.point", has_text="Spindle/Speed").locator(".value")
           ).not_to_have_text("–")
    screenshot(page, "console-device")
    # An operator may link an identifier; the form says what is wrong next to the field.
    page.get_by_role("button", name="Link").click()
    expect(page.locator("#identifier-error")).to_have_text("Enter an identifier.")


def test_keyboard_alone_reaches_a_device_and_every_control_is_labelled(
        page: Page, plant: Plant) -> None:
    page.goto(plant.url)
    page.keyboard.type(plant.tokens["operator"])  # the token field has the focus
    page.keyboard.press("Enter")
    stamping = page.locator(".tree summary", has_text="Stamping")
    stamping.focus()
    page.keyboard.press("Enter")  # opens the area
    page.keyboard.press("Tab")  # its line
    expect(page.locator(":focus")).to_contain_text("L2")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")  # the line's first machine
    expect(page.locator(":focus")).to_have_text("PRESS-201")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="PRESS-201", level=1)).to_be_visible()
    unlabelled = page.evaluate("""() => [...document.querySelectorAll(
        'input, select, button, [role=img]')].filter(el => !el.closest('[hidden]')).filter(el =>
          !(el.labels && el.labels.length) && !el.getAttribute('aria-label') &&
          !el.textContent.trim()).map(el => el.outerHTML.slice(0, 80))""")
    assert unlabelled == []


def test_a_node_wide_token_picks_the_tenant(page: Page, plant: Plant) -> None:
    log_in(page, plant, "admin")
    expect(page.locator("#who-text")).to_contain_text("admin · node-wide")
    expect(page.get_by_label("Tenant")).to_have_value(str(plant.info["tenant_id"]))
    expect(page.locator(".tree summary", has_text="Suzhou")).to_be_visible()


def test_a_viewer_sees_no_operator_actions(page: Page, plant: Plant) -> None:
    log_in(page, plant, "viewer")
    page.goto(plant.url + "#/device/10")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.get_by_text("Identifier:")).to_be_visible()
    expect(page.get_by_label("Link identifier")).to_have_count(0)


def test_markup_in_names_is_shown_as_text(page: Page, plant: Plant) -> None:
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    log_in(page, plant, "operator")
    page.locator(".tree summary", has_text="Bench").click()  # sites are open at first
    page.locator(".tree summary", has_text="B1").click()
    link = page.get_by_role("link", name=XSS_DEVICE)
    expect(link).to_have_text(XSS_DEVICE)
    link.click()
    expect(page.locator("h1.device-name")).to_have_text(XSS_DEVICE)
    expect(page.locator("h3.point-name")).to_have_text(XSS_TEXT)
    assert page.locator("main img, main script").count() == 0
    page.wait_for_timeout(300)
    assert dialogs == []


def test_api_errors_are_shown(page: Page, plant: Plant) -> None:
    log_in(page, plant, "viewer")
    page.goto(plant.url + "#/device/999999")
    expect(page.locator("#errors .error")).to_contain_text("404 not_found: device 999999 not found")


def test_narrow_screen_has_no_horizontal_overflow(page: Page, plant: Plant) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, plant, "operator")
    page.locator(".tree summary", has_text="Machining").click()
    _no_overflow(page)
    page.goto(plant.url + "#/device/10")
    expect(page.locator("article.point").first).to_be_visible()
    _grows(page, "Spindle/Temperature", by=1)
    _no_overflow(page)
    screenshot(page, "console-device-390")


def _no_overflow(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at 390 px"


def test_a_chart_of_ten_thousand_points_redraws_within_a_frame(page: Page,
                                                               plant: Plant) -> None:
    log_in(page, plant, "viewer")
    worst_ms = page.evaluate("""async () => {
        const { LiveChart, CAPACITY } = await import("/console/js/chart.js");
        const chart = new LiveChart("load test", "");
        document.querySelector("main").append(chart.el);
        chart.mount();
        const t0 = Date.now() - CAPACITY * 100;
        for (let i = 0; i < CAPACITY + 500; i += 1) chart.push(t0 + i * 100, Math.sin(i / 50));
        let worst = 0;
        for (let frame = 0; frame < 20; frame += 1) {  // 20 frames of new samples, full buffer
          for (let i = 0; i < 50; i += 1) chart.push(Date.now() + frame * 5000 + i * 100, i);
          const start = performance.now();
          chart.draw();
          worst = Math.max(worst, performance.now() - start);
        }
        if (Number(chart.el.dataset.points) !== CAPACITY) throw new Error("not at capacity");
        chart.destroy();
        return worst;
    }""")
    assert worst_ms < 50, f"a redraw of 10,000 points took {worst_ms:.1f} ms"


def test_connection_lost_banner_comes_and_goes(page: Page, plant: Plant) -> None:
    log_in(page, plant, "operator")
    page.goto(plant.url + "#/device/10")
    banner = page.locator("#offline")
    expect(banner).to_be_hidden()
    _grows(page, "Spindle/Temperature", by=1)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    plant.stop()
    expect(banner).to_be_visible(timeout=20_000)
    screenshot(page, "console-offline")
    # Moving to another page meanwhile says so, with no uncaught error in the page, and the
    # page fills in by itself once the node is back.
    page.goto(plant.url + "#/device/11")
    expect(page.locator("main")).to_contain_text("could not be read", timeout=20_000)
    plant.start()
    expect(banner).to_be_hidden(timeout=30_000)
    expect(page.locator("main")).not_to_contain_text("could not be read", timeout=20_000)
    assert errors == []
    page.goto(plant.url + "#/device/10")
    _grows(page, "Spindle/Temperature")  # the stream reconnected by itself
