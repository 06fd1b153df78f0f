"""The page at udp, in a real headless Chromium against a real lab: flows drawn as faint
lines that fade at the idle timeout, datagrams as small squares, cards counting both."""

from __future__ import annotations

import pytest
from conftest import needs_chromium, wait_for, watched_page
from page_helpers import LAB, command

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install)")
expect = sync_api.expect


def test_datagrams_and_flows_are_drawn_at_udp(chromium, lab_url):
    with watched_page(chromium, "udp-flows") as page:
        page.goto(lab_url)
        expect(page.locator("#connection")).to_have_text("connected")
        page.get_by_label("L4 · UDP").check()
        # The first: the lab's own (a comparison's right side has one too).
        mode = page.locator('[data-part="balancer-mode"]').first
        expect(mode).to_have_text("Layer 4 · UDP flows")
        expect(page.locator('[data-part="latency-title"]')).to_have_text("Round trip per datagram")
        command(page, action="configure", settings={"udp": {"idle_timeout_ms": 1500}})
        # Watch what the scene holds while it draws: squares in flight, flows with lines.
        page.evaluate(
            f"""() => {{
                const udp = {LAB}.scene.udp;
                window.seen = {{squares: 0, up: 0, down: 0, flows: 0}};
                const look = () => {{
                    for (const s of udp.squares) window.seen[s.way] += 1;
                    window.seen.squares = Math.max(window.seen.squares, udp.squares.length);
                    window.seen.flows = Math.max(window.seen.flows, udp.flows.size);
                    requestAnimationFrame(look);
                }};
                look();
            }}"""
        )
        command(page, action="send", count=8)  # four clients, two datagrams each
        seen = wait_for(
            lambda: (s := page.evaluate("window.seen"))["down"] and s["flows"] == 4 and s,
            timeout=10,
            what="squares both ways and four flows",
        )
        assert seen["up"] > 0 and seen["squares"] >= 1
        cards = page.locator(".card.udp")
        expect(cards).to_have_count(3)
        wait_for(
            lambda: (
                sum(int(n) for n in cards.locator('[data-k="datagrams"]').all_text_contents()) == 8
            ),
            what="the cards to count eight datagrams",
        )
        expect(page.locator('[data-total="flows"] b')).to_have_text("4")
        # The lines fade at the idle timeout and the balancer forgets the flows with them.
        wait_for(
            lambda: page.evaluate(f"{LAB}.scene.udp.flows.size") == 0,
            timeout=10,
            what="the flows to fade out",
        )
        expect(page.locator('[data-total="live flows"] b')).to_have_text("0", timeout=10_000)
        page.get_by_label("L7 · HTTP").check()
        expect(page.locator(".card.udp")).to_have_count(0)
