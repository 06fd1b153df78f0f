"""Two balancers on the same backends, on the page in real Chromium: the many-balancers lesson.

Opening the lesson starts the second balancer; the page shows both scenes, each
balancer's own decisions in a log of its own, and what the two together put on
each backend. A prediction about the herd is judged by the real numbers.
"""

from __future__ import annotations

import pytest
from conftest import needs_chromium, watched_page

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install)")
expect = sync_api.expect


def test_the_lesson_shows_both_balancers_decisions_and_the_backends_load(chromium, lab_url):
    with watched_page(chromium, "many-balancers") as page:
        page.set_viewport_size({"width": 1366, "height": 768})
        page.goto(f"{lab_url}lessons/many-balancers")
        expect(page.locator("#lesson-heading")).to_have_text("Many balancers")
        expect(page.locator("#comparison-heading")).to_contain_text(
            "Two balancers, the same backends", timeout=30_000
        )
        expect(page.locator(".shared-logs")).to_be_visible()
        expect(page.locator(".card")).to_have_count(12)  # six backends, as each balancer sees them

        question = page.locator(".directive-predict").first
        wrong = "none: least connections gives each backend one"
        question.get_by_role("button", name=wrong).click()
        result = question.locator(".predict-result")
        expect(result).to_have_attribute("data-verdict", "wrong", timeout=30_000)
        expect(question.locator("button.actual")).to_have_text("three")
        sentence = page.locator("#compare-sentence")
        expect(sentence).to_contain_text("routed b1 2 · b2 2 · b3 2 · b4 0 · b5 0 · b6 0")
        for side in ("left", "right"):
            rows = page.locator(f".shared-log.{side} li")
            expect(rows).to_have_count(3)
            expect(rows.first).to_contain_text("active")  # the balancer's own reason
