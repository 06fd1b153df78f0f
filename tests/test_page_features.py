"""What the page draws and checks, in a real headless Chromium against one real lab:
queues at a backend, live lesson checks, run history, the keyboard, and a lesson that
does not exist. One lab serves the module; each test starts from the default lab.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

import pytest
from conftest import needs_chromium, watched_page
from page_helpers import LESSON_APPLIED, command

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install)")
expect = sync_api.expect


@pytest.fixture(scope="module")
def lab():
    """One whole lab with quiet traffic for the module: its page URL and admin address."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", "serve", "--port", "0", "--paused"]
        + ["--balancer-port", "0", "--backend-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ""
    for line in process.stdout:
        output += line
        if "Press Ctrl-C" in line:
            break
    url = re.search(r"Load Balancing Lab: (http://\S+)", output)
    admin = re.search(r"\(admin (\S+)\)", output)
    assert url and admin, f"the lab did not start:\n{output}"
    yield {"url": url.group(1), "admin": admin.group(1)}
    process.terminate()
    assert process.wait(10) == 0


def balancer_totals(lab) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{lab['admin']}/state", timeout=5) as answer:
        state = json.load(answer)
    return {b["name"]: b["total"] for b in state["backends"]}


def default_lab(page, lab) -> None:
    page.goto(lab["url"])
    expect(page.locator("#connection")).to_have_text("connected")
    command(page, action="default_lab")
    expect(page.locator(".card")).to_have_count(3)
    expect(page.locator("#totals")).to_contain_text("routed 0")


def test_a_backend_at_its_limit_shows_its_queue_and_it_drains(chromium, lab):
    with watched_page(chromium, "page-queue") as page:
        page.goto(f"{lab['url']}lessons/why-load-balance")  # b1 alone, 2 at a time
        expect(page.locator(".card")).to_have_count(1)
        expect(page.locator("#lesson-applied")).to_contain_text(LESSON_APPLIED)
        # Slow enough that all 30 are in flight before the first two are answered, even on a
        # busy machine, and the queue stays long enough to be seen.
        command(page, action="set_latency", name="b1", latency_ms=500)
        queued = page.locator('[data-backend="b1"] [data-k="queued"]')
        page.evaluate(
            """(cell) => {
            window.queueSeen = [];
            new MutationObserver(() => window.queueSeen.push(Number(cell.textContent)))
              .observe(cell, { childList: true, characterData: true, subtree: true });
        }""",
            queued.element_handle(),
        )
        command(page, action="send", count=30)
        expect(queued).to_have_text("28")  # 30 in flight, 2 being worked on
        expect(page.locator('[data-backend="b1"] [data-k="active"]')).to_have_text("2")
        expect(queued).to_have_text("0", timeout=20000)
        seen = page.evaluate("window.queueSeen")
        assert max(seen) == 28 and seen[-1] == 0


def test_an_expect_box_shows_the_measured_numbers_and_turns_when_the_lab_changes(chromium, lab):
    with watched_page(chromium, "page-live-check") as page:
        page.goto(f"{lab['url']}lessons/round-robin")
        expect(page.locator("#lesson-applied")).to_contain_text(LESSON_APPLIED)
        page.get_by_role("button", name="Send 6 requests").click()
        status = page.locator(".directive-do .directive-status").first
        # Done once every answer is in: after the previous test's slow requests on a busy
        # machine, that can take longer than the default 5 s.
        expect(status).to_have_text("done ✓", timeout=20000)
        box = page.locator(".directive-expect").first
        verdict = box.locator(".expect-verdict")
        # Checked when the button is done, and again every 2 s while the lesson is open.
        try:
            expect(verdict).to_have_attribute("data-verdict", "holds", timeout=15000)
        except AssertionError:
            raise AssertionError(f"the box says: {verdict.inner_text()}") from None
        expect(verdict).to_contain_text("routed.b1 == 2 (routed.b1 = 2)")
        command(page, action="send", count=1)  # b1 gets a third: the claim no longer holds
        expect(verdict).to_have_attribute("data-verdict", "fails", timeout=10000)
        expect(verdict).to_contain_text("routed.b1 = 3")
        expect(verdict).to_contain_text("✗")


def share_in(row, name: str) -> int:
    found = re.search(rf"{name} \d+% \((\d+)\)", row)
    return int(found.group(1)) if found else 0


def test_two_runs_with_different_algorithms_are_two_rows_with_the_balancers_numbers(chromium, lab):
    with watched_page(chromium, "page-run-history") as page:
        default_lab(page, lab)
        command(page, action="send", count=9)
        expect(page.locator("#totals")).to_contain_text("routed 9")
        first = balancer_totals(lab)
        page.select_option("#algorithm", "random")
        expect(page.locator("#balancer-algorithm")).to_have_text("random")
        command(page, action="send", count=12)
        expect(page.locator("#totals")).to_contain_text("routed 21")
        second = balancer_totals(lab)
        page.select_option("#algorithm", "least-connections")
        expect(page.locator("#balancer-algorithm")).to_have_text("least-connections")
        rows = page.locator(".runs tbody tr[data-run]")
        expect(rows).to_have_count(2)
        one, two = rows.nth(0).inner_text(), rows.nth(1).inner_text()
        assert "round-robin" in one and "\t9\t" in one
        assert "random" in two and "\t12\t" in two
        for name in ("b1", "b2", "b3"):
            assert share_in(one, name) == first[name]
            assert share_in(two, name) == second[name] - first[name]
        with page.expect_download() as download:
            page.get_by_role("button", name="Export CSV").click()
        with open(download.value.path(), encoding="utf-8") as saved:
            csv = saved.read().splitlines()
        assert csv[0].startswith("run,lesson,step,algorithm,mode,requests,b1,b2,b3,")
        assert csv[1].split(",")[3:6] == ["round-robin", "http", "9"]
        with page.expect_download() as download:
            page.get_by_role("button", name="Save the latency chart as PNG").click()
        assert download.value.suggested_filename == "latency.png"
        with open(download.value.path(), "rb") as saved:
            assert saved.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_keyboard_closes_the_panel_reaches_the_text_and_picks_an_algorithm(chromium, lab):
    with watched_page(chromium, "page-keyboard") as page:
        default_lab(page, lab)
        toggle = page.locator("#lessons-toggle")
        toggle.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#lesson-panel")).to_be_visible()
        page.locator("#lesson-index a").first.click()
        expect(page.locator("#lesson-heading")).to_have_text("Why load balance?")
        toggle.focus()
        page.keyboard.press("Enter")  # closes
        expect(page.locator("#lesson-panel")).to_be_hidden()
        page.keyboard.press("Enter")  # opens again: the keyboard is taken into the panel
        expect(page.locator("#lesson-panel")).to_be_visible()
        for _ in range(3):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "lesson":
                break
        assert page.evaluate("document.activeElement.id") == "lesson", "text not within 3 Tabs"
        page.keyboard.press("Escape")
        expect(page.locator("#lesson-panel")).to_be_hidden()
        expect(toggle).to_be_focused()
        expect(page).to_have_title(re.compile("^Load Balancing Lab"))

        command(page, action="default_lab")
        select = page.locator("#algorithm")
        select.focus()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        # A command's answer comes after the state of any command sent before it: had an
        # arrow key applied an algorithm, the page would show it by now.
        command(page, action="pause")
        expect(page.locator("#balancer-algorithm")).to_have_text("round-robin")
        picked = select.input_value()
        assert picked != "round-robin"
        page.keyboard.press("Enter")
        expect(page.locator("#balancer-algorithm")).to_have_text(picked)


def test_an_unknown_lesson_says_so_and_leads_back(chromium, lab):
    context = chromium.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        answer = page.goto(f"{lab['url']}lessons/no-such-lesson")
        assert answer.status == 404
        expect(page.get_by_role("heading", level=1)).to_contain_text("no-such-lesson")
        expect(page.get_by_role("link", name="Round robin", exact=True)).to_be_visible()
        page.get_by_role("link", name="← Back to the lab").click()
        expect(page.locator("#connection")).to_have_text("connected")
        expect(page).to_have_title("Load Balancing Lab")
    finally:
        context.close()
    # Chromium reports the 404 of the page itself on the console; nothing else may appear.
    assert [p for p in problems if "status of 404" not in p] == []
    assert len(problems) <= 1
