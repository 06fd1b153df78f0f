"""The comparison on the page, in real Chromium: two scenes, one comparison, at three sizes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import needs_chromium, watched_page

pytestmark = needs_chromium
LAB = "document.querySelector('[data-lab]').lab"
SIZES = {"laptop": (1366, 768), "projector": (1920, 1080), "phone": (390, 844)}


@pytest.fixture(scope="module")
def compare_url():
    """`lb-lab serve --compare round-robin,least-connections`, quiet, on free ports."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", "serve", "--port", "0", "--paused", "--balancer-port", "0",
         "--backend-port", "0", "--compare", "round-robin,least-connections"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = ""
    for line in process.stdout:
        output += line
        if "Press Ctrl-C" in line:
            break
    match = re.search(r"Load Balancing Lab: (http://\S+)", output)
    try:
        assert match, f"the lab did not start:\n{output}"
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(15)


def boxes(page) -> dict:
    """Where the two scenes, every card and the comparison are, and how wide the page is."""
    return page.evaluate(
        """() => {
        const box = (el) => { const r = el.getBoundingClientRect();
            return {x: r.x, y: r.y + scrollY, w: r.width, bottom: r.bottom + scrollY}; };
        const root = document.querySelector('[data-lab]');
        const scenes = [...root.querySelectorAll('.scene')].map(box);
        const cards = [...root.querySelectorAll('.card')].map(box);
        return {scenes, cards, comparison: box(root.querySelector('[data-part=comparison]')),
                width: document.documentElement.scrollWidth, height: innerHeight};
    }"""
    )


def open_page(page, url: str, size: str) -> None:
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(url)
    page.wait_for_function(f"() => {LAB}.right && {LAB}.right.store.state !== null")
    page.wait_for_function("() => document.querySelectorAll('.card').length === 6")


@pytest.mark.parametrize("size", ["laptop", "projector"])
def test_two_scenes_side_by_side_and_every_card_on_screen(chromium, compare_url, size):
    with watched_page(chromium, f"compare-{size}") as page:
        open_page(page, compare_url, size)
        seen = boxes(page)
        left, right = seen["scenes"]
        assert right["x"] >= left["x"] + left["w"] - 1  # side by side
        assert abs(right["bottom"] - left["bottom"]) < 2
        assert seen["comparison"]["y"] >= left["bottom"]  # below them
        assert seen["width"] <= SIZES[size][0]
        for card in seen["cards"]:
            assert card["y"] >= 0 and card["bottom"] <= seen["height"], card
        assert seen["comparison"]["bottom"] <= seen["height"]


def test_on_a_phone_the_sides_stack(chromium, compare_url):
    with watched_page(chromium, "compare-phone") as page:
        open_page(page, compare_url, "phone")
        seen = boxes(page)
        left, right = seen["scenes"]
        assert right["y"] >= left["bottom"]
        assert seen["comparison"]["y"] >= right["bottom"]
        assert seen["width"] <= 390


def test_a_knob_on_the_left_slows_both_and_the_comparison_says_who_won(chromium, compare_url):
    with watched_page(chromium, "compare-run") as page:
        open_page(page, compare_url, "laptop")
        page.locator("#backends [data-backend=b1] [data-act=slow]").click()  # the left's card
        # One click on the left's card: the right side's b1 is slowed too, by the lab.
        page.wait_for_function(
            f"() => {LAB}.right.store.state.backends.find((b) => b.name === 'b1')"
            ".latency_ms === 300"
        )
        right_b1 = page.locator("[data-part=compare-pane] [data-backend=b1] [data-k=knobs]")
        assert "+300 ms latency" in right_b1.text_content()
        page.evaluate(f"() => {LAB}.command({{action: 'set_traffic', rate: 40, clients: 8}})")
        page.evaluate(f"() => {LAB}.command({{action: 'reset'}})")
        page.evaluate(f"() => {LAB}.command({{action: 'resume'}})")
        # Each scene draws its own side's decisions.
        page.wait_for_function(f"() => {LAB}.right.scene.flights.size > 0")
        page.wait_for_function(f"() => {LAB}.scene.flights.size > 0")
        page.wait_for_function(
            "() => /on the same [0-9,]{3,} requests/.test("
            "document.querySelector('[data-part=compare-sentence]').textContent)",
            timeout=30_000,
        )
        page.evaluate(f"() => {LAB}.command({{action: 'pause'}})")
        sentence = page.locator("[data-part=compare-sentence]").text_content()
        assert re.fullmatch(
            r"(least-connections|round-robin) p95 [0-9.]+ m?s vs (round-robin|least-connections) "
            r"[0-9.]+ m?s on the same [0-9,]+ requests",
            sentence,
        ), sentence
        rows = page.locator("[data-part=compare-table] tr").evaluate_all(
            "(rows) => rows.map((row) => row.dataset.row || '')"
        )
        assert rows == ["", "p50", "p95", "p99", "max", "failed", "share"]
        header = page.locator("[data-part=compare-table] tr").first.text_content()
        assert "round-robin" in header and "least-connections" in header
        # The toggle ends it: the right side's scene goes, the lab's own panels come back.
        page.get_by_role("button", name="Compare").click()
        page.wait_for_function(f"() => {LAB}.store.state.compare === null")
        assert page.locator("[data-part=compare-pane]").is_hidden()
        assert page.locator(".panel-log").is_visible()
        page.get_by_role("button", name="Compare").click()
        page.wait_for_function(f"() => {LAB}.store.state.compare !== null")
        assert page.locator("[data-part=compare-pane]").is_visible()
        # A new comparison counts from zero on both sides, and the page follows the new
        # right side's numbers (not the last comparison's).
        page.evaluate(f"() => {LAB}.command({{action: 'send', count: 5}})")
        page.wait_for_function(
            f"() => [{LAB}.store, {LAB}.right.store].every((s) => s.counters &&"
            " s.counters.traffic.completed === 5 && s.counters.total === 5)",
            timeout=15_000,
        )
