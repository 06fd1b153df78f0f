"""The page in a real headless Chromium, against a real `lb-lab serve` with real processes.

Each test starts its own lab (about a second) so no test inherits another's
kills and settings, waits on what the page shows (never on the clock), and
saves a screenshot under artifacts/screenshots/ for a human to look at.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import needs_chromium, watched_page
from page_helpers import LAB

ANY_PORTS = ["--balancer-port", "0", "--backend-port", "0"]

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install)")
expect = sync_api.expect


@pytest.fixture
def lab_url():
    """A whole lab with quiet traffic, on free ports; its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", "serve", "--port", "0", "--paused", *ANY_PORTS],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ""
    for line in process.stdout:
        output += line
        if "Press Ctrl-C" in line:
            break
    match = re.search(r"Load Balancing Lab: (http://\S+)", output)
    assert match, f"the lab did not start:\n{output}"
    yield match.group(1)
    process.terminate()
    assert process.wait(10) == 0


@pytest.fixture
def page(chromium, lab_url, request):
    """The lab page, loaded and connected; fails the test on any console error."""
    with watched_page(chromium, request.node.name) as page:
        page.goto(lab_url)
        expect(page.locator("#connection")).to_have_text("connected")
        expect(page.locator(".card")).to_have_count(3)
        yield page


def card(page, name: str):
    return page.locator(f'[data-backend="{name}"]')


def routed(page, name: str):
    return card(page, name).locator('[data-k="total"]')


def count(page, name: str) -> int:
    return int(routed(page, name).inner_text())


def test_the_page_shows_the_lab_and_is_keyboard_usable(page):
    expect(page.locator("#balancer-algorithm")).to_have_text("round-robin")
    expect(page.locator("#balancer-mode")).to_contain_text("Layer 7")
    expect(page.locator(".card .badge")).to_have_text(["up", "up", "up"])
    expect(page.locator("#pause")).to_have_text("Resume")  # started paused
    page.locator("#send-1").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#totals")).to_contain_text("routed 1")


def test_send_six_under_round_robin_shows_two_on_every_card(page):
    for _ in range(6):
        page.get_by_role("button", name="Send 1", exact=True).click()
    for name in ("b1", "b2", "b3"):
        expect(routed(page, name)).to_have_text("2")
    expect(page.locator("#log li")).to_have_count(6)
    expect(page.locator("#log li").first).to_contain_text("next in turn")


def test_least_connections_sends_less_to_a_slow_backend(page):
    page.select_option("#algorithm", "least-connections")
    expect(page.locator("#balancer-algorithm")).to_have_text("least-connections")
    card(page, "b1").get_by_role("button", name="Slow b1 down by 300 ms").click()
    expect(card(page, "b1").locator('[data-k="knobs"]')).to_contain_text("+300 ms")
    for _ in range(3):
        page.get_by_role("button", name="Send 10").click()
    expect(page.locator("#totals")).to_contain_text("routed 30")
    slow, fast = count(page, "b1"), count(page, "b2") + count(page, "b3")
    assert slow + fast == 30
    assert slow < fast / 2, f"b1 (slow) got {slow} of 30"
    expect(page.locator("#log li").first).to_contain_text("active")


def test_an_older_state_never_rolls_the_numbers_back(page):
    page.get_by_role("button", name="Send 10").click()
    expect(page.locator("#totals")).to_contain_text("routed 10")
    # A command's state read before the batch that showed 10, arriving after it. The
    # page is read in the same task, before any later batch could paint over it.
    totals, cards = page.evaluate(
        """() => {
        const { store } = document.querySelector("[data-lab]").lab;
        const old = structuredClone(store.state);
        old.counters = structuredClone(store.counters);
        old.counters.total = 0;
        old.counters.read -= 1;
        for (const numbers of Object.values(old.counters.backends)) numbers.total = 0;
        store.applyState(old);
        const routed = [...document.querySelectorAll('[data-k="total"]')];
        return [document.getElementById("totals").textContent,
                routed.reduce((sum, cell) => sum + Number(cell.textContent), 0)];
    }"""
    )
    assert "routed 10" in totals
    assert cards == 10


def test_a_killed_backend_is_shown_down_and_traffic_keeps_flowing(page):
    card(page, "b2").get_by_role("button", name="Kill b2").click()
    expect(card(page, "b2").locator(".badge")).to_have_text("killed")
    expect(card(page, "b2").get_by_role("button", name="Restart b2")).to_be_visible()
    page.get_by_role("button", name="Send 10").click()
    page.get_by_role("button", name="Send 10").click()
    # The balancer's and the generator's counters are read one after the other, so wait
    # for both to agree that all 20 are done.
    page.wait_for_function(
        "() => { const c = document.querySelector('[data-lab]').lab.store.counters;"
        " return c && c.traffic.completed === 20"
        " && c.backends.b1.total + c.backends.b3.total === 20; }"
    )
    assert page.evaluate(f"{LAB}.store.counters.traffic.failed") == 0
    # The cards show the store's counters at the next panel refresh (five times a second).
    shown = "(names) => names.reduce((sum, name) => sum + Number(document.querySelector("
    shown += "`[data-backend=${name}] [data-k=total]`).textContent), 0) === 20"
    page.wait_for_function(shown, arg=["b1", "b3"])
    assert count(page, "b1") + count(page, "b3") == 20  # every answer came from the others
    expect(card(page, "b2").locator('[data-k="failures"]')).not_to_have_text("0")


def test_a_refused_command_is_shown_on_the_page(page):
    page.fill("#rate", "99999")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#message")).to_be_visible()
    expect(page.locator("#message")).to_contain_text("rate must be 0 to 5000")
    # What was typed stays, marked, so it can be corrected; the lab keeps its real rate.
    expect(page.locator("#rate")).to_have_value("99999")
    expect(page.locator("#rate")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#clients-label")).to_contain_text("2 req/s")


def test_step_mode_sends_one_request_and_shows_why(page):
    page.get_by_label("Step mode").check()
    expect(page.locator("#speed")).to_have_value("0.25")
    page.get_by_role("button", name="Step: send one").click()
    expect(page.locator("#step-route")).to_contain_text("→ b1")
    expect(page.locator("#step-why")).to_contain_text("b1 is next in turn")


# How long (ms, frame by frame) the header shows a p50 while the latency chart says it has
# no answers (the chart's accessible name says what it draws).
WATCH_LATENCY = """() => {
  const watch = { mismatched: 0, last: performance.now() };
  const tick = (now) => {
    const header = document.getElementById("totals").textContent;
    const chart = document.getElementById("latency").getAttribute("aria-label");
    const apart = /p50 [0-9]/.test(header) && chart.includes("no answers");
    if (apart) watch.mismatched += now - watch.last;
    watch.last = now;
    requestAnimationFrame(tick);
  };
  window.latencyWatch = watch;
  requestAnimationFrame(tick);
}"""


def test_the_latency_chart_shows_an_answer_when_the_header_does_and_restarts_on_reset(page):
    chart = page.locator("#latency")
    expect(chart).to_have_attribute("aria-label", re.compile("no answers yet"))
    page.evaluate(WATCH_LATENCY)
    # Send just after a second begins: a chart that waits for the second to end (as it did)
    # would then say "no answers yet" for most of a second while the header shows a p50.
    page.wait_for_function("() => Date.now() % 1000 < 100", polling=5)
    page.get_by_role("button", name="Send 1", exact=True).click()
    expect(page.locator("#totals")).to_contain_text(re.compile(r"p50 [0-9]"))
    expect(chart).to_have_attribute("aria-label", re.compile(r"latest: p50 [0-9.]+ ms"))
    # It may trail the header by a batch (50 ms, more on a busy machine): the `state` that
    # answers a command reads the counters on its own.
    assert page.evaluate("window.latencyWatch.mismatched") < 400
    page.get_by_role("button", name="Reset").click()
    expect(page.locator("#totals")).to_contain_text("routed 0")
    expect(chart).to_have_attribute("aria-label", re.compile("no answers yet"))


def overflows(locator) -> bool:
    return locator.evaluate("(el) => el.scrollWidth > el.clientWidth")


def test_a_long_reason_opens_whole_on_keyboard_focus_or_pointer_and_the_log_stays_tidy(page):
    card(page, "b1").get_by_role("button", name="Raise b1's weight").click()
    expect(card(page, "b1").locator('[data-k="weight"]')).to_have_text("2")
    page.get_by_role("button", name="Send 10").click()
    rows = page.locator("#log li")
    expect(rows).to_have_count(7)
    expect(rows.first).to_contain_text("scores grow by weight 2:1:1")
    assert overflows(rows.first.locator(".why")), "the reason fits: the test needs a longer one"
    one_line = rows.first.bounding_box()["height"]

    card(page, "b3").get_by_role("button", name="Raise b3's weight").focus()
    page.keyboard.press("Tab")  # the next stop after the last card is the newest decision
    focused = page.locator("#log li:focus")
    expect(focused).to_have_count(1)
    assert not overflows(focused.locator(".why"))
    assert focused.bounding_box()["height"] > 1.5 * one_line  # wrapped onto more lines
    assert rows.nth(3).bounding_box()["height"] == one_line  # the others stay one line

    page.keyboard.press("Escape")
    expect(page.locator("#log li:focus")).to_have_count(0)
    rows.nth(2).hover()
    assert not overflows(rows.nth(2).locator(".why"))
    page.mouse.move(0, 0)
    newest = rows.first.inner_text()
    page.evaluate(f"{LAB}.command({{action: 'send', count: 1}})")
    expect(page.locator("#totals")).to_contain_text("routed 11")
    expect(rows.first).not_to_have_text(newest)  # the log goes on once nobody is reading it


def test_health_checks_drain_and_their_reasons_show_on_the_card(page):
    """Real probes: /health answering 503 takes b2 down (with the reason), drain empties b3."""
    command = f"(data) => {LAB}.command(data)"
    fast = {"enabled": True, "interval_ms": 200, "timeout_ms": 150, "rise": 2, "fall": 2}
    page.evaluate(command, {"action": "configure", "settings": {"health": fast}})
    b2 = card(page, "b2")
    # Every probe the balancer makes is drawn: a ring to the card and back.
    page.wait_for_function(f"() => {LAB}.scene.probes.some((p) => p.backend === 'b3' && p.ok)")
    page.evaluate(command, {"action": "set_healthy", "name": "b2", "healthy": False})
    page.wait_for_function(f"() => {LAB}.scene.probes.some((p) => p.backend === 'b2' && !p.ok)")
    expect(b2.locator(".badge")).to_have_text("down")
    expect(b2.locator('[data-k="reason"]')).to_have_text(
        "2 failed checks in a row (GET /health answered 503 Service Unavailable)"
    )
    expect(page.locator("#log")).to_contain_text("health check: 2 failed checks in a row")
    expect(b2.locator('[data-act="kill"]')).to_have_text("Kill")  # the process still runs

    b3 = card(page, "b3")
    b3.locator('[data-act="drain"]').click()
    expect(b3.locator(".badge")).to_have_text("drained")
    expect(b3.locator('[data-act="drain"]')).to_have_text("Undrain")
    for _ in range(3):
        page.get_by_role("button", name="Send 1", exact=True).click()
    expect(routed(page, "b1")).to_have_text("3")  # b2 is down, b3 drained: only b1 is left
    assert (count(page, "b2"), count(page, "b3")) == (0, 0)

    page.evaluate(command, {"action": "set_healthy", "name": "b2", "healthy": True})
    expect(b2.locator(".badge")).to_have_text("up")
    expect(b2.locator('[data-k="reason"]')).to_have_text("")
    b3.locator('[data-act="drain"]').click()
    expect(b3.locator(".badge")).to_have_text("up")
