"""Headless Chromium for `lb-lab bench --web` (through Playwright), and what it runs in the page.

Playwright is a test dependency, not a lab one, so it is imported only here and
only when the web benchmark runs; without it (or without Chromium) the
benchmark stops with one line that says what to install.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)
VIEWPORT = {"width": 1440, "height": 900}  # a projector's worth of page

# Counts requestAnimationFrame callbacks from now on, with the longest gap between two,
# in a loop of its own: it runs in the same frames as the page's loop, so when the page
# is slow to draw, this count drops with it.
START_FRAME_COUNTER = """() => {
  const start = performance.now();
  const counter = { frames: 0, start, last: start, worst: 0, on: true };
  const tick = (now) => {
    if (!counter.on) return;
    counter.frames += 1;
    counter.worst = Math.max(counter.worst, now - counter.last);
    counter.last = now;
    requestAnimationFrame(tick);
  };
  window.__benchFrames = counter;
  requestAnimationFrame(tick);
}"""

STOP_FRAME_COUNTER = """() => {
  const counter = window.__benchFrames;
  counter.on = false;
  return { frames: counter.frames, ms: performance.now() - counter.start, worst_ms: counter.worst };
}"""

# The page's one test and benchmark hook: its lab root element's `lab` (static/js/page.js),
# with the store the socket feeds, the scene, and `command`.
LAB = 'document.querySelector("[data-lab]").lab'

# The page's scene records decision-to-screen delays while `scene.delays` is an array.
START_DELAYS = f"() => {{ {LAB}.scene.delays = []; }}"
STOP_DELAYS = (
    f"() => {{ const s = {LAB}.scene; const d = s.delays || []; s.delays = null; return d; }}"
)
COMMAND = f"(data) => {LAB}.command(data)"

# True once the page shows `count` backend cards marked up and the balancer calls them healthy;
# returns the wall-clock time it first saw that (Date.now() is the machine's clock).
HEALTHY_BACKENDS = """(count) => {
  const root = document.querySelector("[data-lab]");
  const store = root && root.lab && root.lab.store;
  const state = store && store.state;
  const counters = store && store.counters;
  // The lab's own cards (#backends): a comparison's right side has cards of its own.
  const badges = [...document.querySelectorAll("#backends .card .badge")].map((b) => b.textContent);
  const healthy = counters && Object.values(counters.backends).filter((b) => b.healthy).length;
  const up = badges.length === count && badges.every((t) => t === "up");
  return state && up && healthy === count ? Date.now() / 1000 : false;
}"""

# The counters as the page shows them: each card's routed and errors, the header's routed,
# and the sum of the cards' errors (the balancer's failures; the header says what clients saw).
SHOWN_COUNTERS = """() => {
  const number = (el) => (el ? Number(el.textContent.replace(/[^0-9]/g, "")) : null);
  const backends = {};
  for (const card of document.querySelectorAll("#backends .card[data-backend]")) {
    backends[card.dataset.backend] = {
      total: number(card.querySelector('[data-k="total"]')),
      failures: number(card.querySelector('[data-k="failures"]')),
    };
  }
  const header = {};
  for (const span of document.querySelectorAll("#totals > span")) {
    header[span.childNodes[0].textContent.trim()] = span.querySelector("b").textContent;
  }
  const failures = Object.values(backends).reduce((sum, b) => sum + b.failures, 0);
  return { backends, routed: Number(header.routed), failures };
}"""


class BrowserError(RuntimeError):
    """No way to run the page: Playwright or Chromium is missing, or Chromium would not start."""


def find_chromium(wanted: str | None) -> str:
    """The Chromium to drive: the one asked for, else Debian's, else any on PATH."""
    if wanted:
        if not Path(wanted).exists():
            raise BrowserError(f"no browser at {wanted}")
        return wanted
    if Path(DEFAULT_CHROMIUM).exists():
        return DEFAULT_CHROMIUM
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    raise BrowserError("no Chromium found (apt-get install chromium, or give --chromium PATH)")


@contextlib.contextmanager
def chromium(executable: str) -> Iterator[Any]:
    """A headless Chromium (a Playwright Browser), closed on the way out."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        raise BrowserError("the web benchmark needs Playwright: pip install playwright") from None
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=list(FLAGS))
        except Error as exc:
            raise BrowserError(f"Chromium did not start: {str(exc).splitlines()[0]}") from None
        try:
            yield browser
        finally:
            browser.close()
