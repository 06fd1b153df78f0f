"""The page's layout in a real headless Chromium, at a laptop's, a projector's, a narrow and a
phone's size, with 3, 6 and 12 backends, with and without the lesson panel.

One lab serves the whole module and one page is resized through every case (a lab per case
would cost a second each). Each case keeps a screenshot under artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest
from conftest import SCREENSHOTS, needs_chromium, watched_page
from page_helpers import LAB, LESSON_APPLIED

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install)")
expect = sync_api.expect

# A laptop, a projector, a laptop at 125% browser zoom (1366x768 seen as 1093x614), narrow
# and a phone.
SIZES = [(1366, 768), (1920, 1080), (1093, 614), (800, 900), (390, 844)]
WIDE = 1101  # from here up the page is exactly the window's height (static/layout.css)


# Everything measured in one go, in the page: where each card can be seen once brought into
# view (each in its own scroll region, never by moving the scene), whether the balancer box
# covers a client drawn on the canvas, and the size of the log and the charts.
MEASURE = """() => {
  const root = document.querySelector("[data-lab]");
  const scene = root.lab.scene;
  const sceneBox = root.querySelector('[data-part="scene"]').getBoundingClientRect();
  const inside = (r, o) => r.left >= o.left - 1 && r.right <= o.right + 1
    && r.top >= o.top - 1 && r.bottom <= o.bottom + 1;
  const viewport = { left: 0, top: 0, right: innerWidth, bottom: innerHeight };
  const cards = [];
  for (const card of root.querySelectorAll(".card[data-backend]")) {
    card.scrollIntoView({ block: "nearest", inline: "nearest" });
    const r = card.getBoundingClientRect();
    const region = root.querySelector('[data-part="backends"]').getBoundingClientRect();
    const scrolls = getComputedStyle(root.querySelector('[data-part="backends"]')).overflowY;
    const kill = card.querySelector('[data-act="kill"]').getBoundingClientRect();
    const hit = document.elementFromPoint(kill.left + kill.width / 2, kill.top + kill.height / 2);
    cards.push({
      name: card.dataset.backend,
      visible: inside(r, viewport) && (scrolls === "visible" || inside(r, region)),
      usable: Boolean(hit && card.contains(hit)),
      width: r.width,
    });
  }
  const sceneAfter = root.querySelector('[data-part="scene"]').getBoundingClientRect();
  scene.measure();
  const canvas = scene.canvas.getBoundingClientRect();
  const box = root.querySelector('[data-part="balancer"]').getBoundingClientRect();
  const covered = [];
  for (let slot = 0; slot < scene.clients; slot += 1) {
    const c = scene.clientPoint(slot);
    const x = canvas.left + c.x;
    const y = canvas.top + c.y;
    if (x + c.r > box.left && x - c.r < box.right && y + c.r > box.top && y - c.r < box.bottom) {
      covered.push(slot + 1);
    }
  }
  const size = (part) => {
    const r = root.querySelector(`[data-part="${part}"]`).getBoundingClientRect();
    return [Math.round(r.width), Math.round(r.height)];
  };
  const workspace = root.querySelector('[data-part="workspace"]').getBoundingClientRect();
  return {
    cards, covered,
    emptyBelow: Math.round(innerHeight - workspace.bottom),
    sceneMoved: Math.abs(sceneAfter.top - sceneBox.top) + Math.abs(sceneAfter.left - sceneBox.left),
    scrollY: scrollY,
    pageHeight: document.documentElement.scrollHeight,
    log: size("log"), bars: size("bars"), latency: size("latency"),
    balancer: [Math.round(box.width), Math.round(box.height)],
  };
}"""


def settle(page) -> None:
    """Two animation frames: the layout and the scene's measurement follow a resize."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def add_backends(page, count: int) -> None:
    page.evaluate(
        f"""async (count) => {{
        const lab = {LAB};
        // Count the adds: an acknowledgement can come before the state that shows it.
        const missing = count - lab.store.state.backends.length;
        for (let i = 0; i < missing; i++) {{
          const answer = await lab.command({{ action: "add_backend" }});
          if (!answer.ok) throw new Error(answer.error);
        }}
    }}""",
        count,
    )
    expect(page.locator(".card")).to_have_count(count)


def test_every_card_is_reachable_no_client_is_covered_and_the_panels_have_room(chromium, lab_url):
    failures: list[str] = []
    with watched_page(chromium, "layout-last") as page:
        page.goto(lab_url)
        expect(page.locator("#connection")).to_have_text("connected")
        expect(page.locator(".card")).to_have_count(3)
        page.get_by_role("button", name="Send 10").click()  # a log with rows, charts with bars
        expect(page.locator("#totals")).to_contain_text("routed 10")
        for backends in (3, 6, 12):
            add_backends(page, backends)
            for lesson in (False, True):
                toggle = page.locator("#lessons-toggle")
                if (toggle.get_attribute("aria-expanded") == "true") != lesson:
                    toggle.click()
                for width, height in SIZES:
                    page.set_viewport_size({"width": width, "height": height})
                    page.evaluate("() => window.scrollTo(0, 0)")
                    settle(page)
                    shown = page.evaluate(MEASURE)
                    panel = "lesson" if lesson else "plain"
                    case = f"{width}x{height}, {backends} backends, {panel}"
                    name = f"layout-{width}x{height}-{backends}-{panel}"
                    page.evaluate("() => window.scrollTo(0, 0)")
                    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
                    failures += problems(case, shown, width)
    assert failures == []


def problems(case: str, shown: dict, width: int) -> list[str]:
    found = []
    for card in shown["cards"]:
        if not card["visible"]:
            found.append(f"{case}: {card['name']} cannot be brought fully into view")
        if not card["usable"]:
            found.append(f"{case}: {card['name']}'s Kill button is covered")
    if shown["covered"]:
        found.append(f"{case}: the balancer box covers clients {shown['covered']}")
    for part in ("log", "bars", "latency"):
        w, h = shown[part]
        if w <= 0 or h <= 0:
            found.append(f"{case}: the {part} panel is {w}x{h}")
    if width >= WIDE and (shown["sceneMoved"] or shown["scrollY"]):
        found.append(f"{case}: bringing a card into view moved the scene or the page")
    if width >= WIDE and not 0 <= shown["emptyBelow"] <= 2:
        found.append(f"{case}: the page leaves {shown['emptyBelow']} px empty at the bottom")
    return found


def test_presenter_view_is_large_type_at_1920(chromium, lab_url):
    with watched_page(chromium, "presenter-1920") as page:
        page.set_viewport_size({"width": 1920, "height": 1080})
        page.goto(f"{lab_url}?presenter=1")
        expect(page.locator("#presenter-toggle")).to_have_attribute("aria-pressed", "true")
        page.evaluate(f"{LAB}.command({{action: 'send', count: 3}})")
        expect(page.locator("#log li")).not_to_have_count(0)
        sizes = page.evaluate(
            """() => {
            const px = (selector) => [...document.querySelectorAll(selector)]
              .map((el) => parseFloat(getComputedStyle(el).fontSize));
            return {
              "card numbers": px(".card .nums dd"),
              "header numbers": px("#totals b"),
              "decision reasons": px("#log .why"),
              "card reasons": px(".card .card-reason"),
              "algorithm": px("#balancer-algorithm"),
            };
        }"""
        )
        for what, values in sizes.items():
            assert values, f"no {what} on the page"
            assert min(values) >= 24, f"{what}: {values} px"
        # The toolbar is cut down to what a lesson needs.
        expect(page.locator("#traffic-form")).to_be_hidden()
        expect(page.locator("#add-backend")).to_be_hidden()
        expect(page.locator("#send-1")).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "presenter-on-1920.png"))
        # A lesson's text is readable beside the scene, in large type too.
        page.goto(f"{lab_url}lessons/round-robin?presenter=1")
        expect(page.locator("#lesson-heading")).to_have_text("Round robin")
        text = page.locator("#lesson-body p").first
        assert text.evaluate("(el) => parseFloat(getComputedStyle(el).fontSize)") >= 22
        lesson, scene = (
            page.locator("#lesson").bounding_box(),
            page.locator("#scene").bounding_box(),
        )
        assert lesson["x"] + lesson["width"] <= scene["x"]  # beside it, not over it
        assert lesson["width"] >= 400
        expect(page.locator("#lesson-applied")).to_contain_text(LESSON_APPLIED)
        expect(page.locator("#totals")).to_contain_text("routed 0")
        page.screenshot(path=str(SCREENSHOTS / "presenter-lesson-1920.png"))
        page.get_by_role("button", name="Leave presenter view").click()
        expect(page).not_to_have_url(re.compile("presenter"))
        assert (
            float(
                page.locator(".card .nums dd").first.evaluate(
                    "(el) => parseFloat(getComputedStyle(el).fontSize)"
                )
            )
            < 24
        )
