"""A WebSocket tunnel on the page, in a real headless Chromium against a real `lb-lab serve`.

A real client opens a WebSocket through the lab's balancer to a toy backend's
/ws echo; the page draws it as a line from its client to that backend, as it
draws a Layer 4 connection, for as long as it stays open, and takes it away at
its done.
"""

from __future__ import annotations

import pytest
from conftest import needs_chromium, watched_page
from page_helpers import LAB

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install)")
websockets_sync = pytest.importorskip("websockets.sync.client")
expect = sync_api.expect

# The scene's line for a flight, halfway from its client to the balancer (where no health
# check probe passes), and what the canvas shows there: the scene's background, or not.
PIXEL = f"""(id) => {{
    const scene = {LAB}.scene;
    const flight = scene.flights.get(id);
    const slot = flight ? flight.slot : scene.lastSlot;
    scene.lastSlot = slot;
    const from = scene.clientPoint(slot), to = scene.layout.entry;
    const x = (from.x + to.x) / 2, y = (from.y + to.y) / 2;
    const scale = scene.canvas.width / scene.width;
    const at = [Math.round(x * scale), Math.round(y * scale)];
    const [r, g, b] = scene.ctx.getImageData(at[0], at[1], 1, 1).data;
    const probe = document.createElement("canvas").getContext("2d");
    probe.fillStyle = scene.background;
    probe.fillRect(0, 0, 1, 1);
    const [br, bg, bb] = probe.getImageData(0, 0, 1, 1).data;
    return {{ drawn: r !== br || g !== bg || b !== bb, phase: flight ? flight.phase : null,
             kind: flight ? flight.kind : null, backend: flight ? flight.backend : null }};
}}"""


def test_a_live_tunnel_is_drawn_as_a_line_until_its_done(chromium, lab_url):
    with watched_page(chromium, "tunnel-line") as page:
        page.goto(lab_url)
        expect(page.locator("#connection")).to_have_text("connected")
        expect(page.locator(".card")).to_have_count(3)
        listen = page.evaluate(f"{LAB}.store.state.balancer.listen")
        with websockets_sync.connect(f"ws://{listen}/ws", open_timeout=5) as ws:
            backend = ws.response.headers["X-Backend"]
            page.wait_for_function(
                f"""() => [...{LAB}.scene.flights.values()].some(
                    (f) => f.kind === "connection" && f.phase === "wait")""",
                timeout=10_000,
            )
            (rid,) = page.evaluate(f"[...{LAB}.scene.flights.keys()]")
            seen = page.evaluate(PIXEL, rid)
            assert seen == {"drawn": True, "phase": "wait", "kind": "connection",
                            "backend": backend}  # fmt: skip
            ws.send("still open")
            assert ws.recv(timeout=5) == "still open"
            assert page.evaluate(PIXEL, rid)["drawn"]  # a line, not a dot that went back
            expect(page.locator("#log")).to_contain_text("…")  # no done yet
        # The client closed it: the done arrives, the line fades and is gone.
        page.wait_for_function(f"(id) => !{LAB}.scene.flights.has(id)", arg=rid, timeout=10_000)
        page.wait_for_function(f"(id) => !({PIXEL})(id).drawn", arg=rid, timeout=5_000)
        expect(page.locator("#log")).to_contain_text(f"{backend} closed the connection first")
