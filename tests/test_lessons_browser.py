"""Lessons in a real headless Chromium, against a real `lb-lab serve` with real processes.

A deep link opens a lesson and the lab visibly switches to it; a lesson's
button changes the real counts; a prediction about a number is judged on what
the lab really measured; progress survives a reload; previous and next walk
the course. A hostile lesson cannot run script in the page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import needs_chromium, watched_page
from page_helpers import LESSON_APPLIED

from lab.lessons.catalog import Catalog

COURSE = len(Catalog().lessons())

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install)")
expect = sync_api.expect


@pytest.fixture
def serve():
    """Start whole labs on free ports (serve(*flags, lessons=DIR) -> URL); stop them after."""
    processes = []

    def start(*flags: str, lessons: Path | None = None) -> str:
        env = dict(os.environ)
        if lessons is not None:
            env["LB_LAB_LESSONS"] = str(lessons)
        process = subprocess.Popen(
            [sys.executable, "-m", "lab", "serve", "--port", "0", "--paused", *flags]
            + ["--balancer-port", "0", "--backend-port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        processes.append(process)
        output = ""
        for line in process.stdout:
            output += line
            if "Press Ctrl-C" in line:
                break
        match = re.search(r"Load Balancing Lab: (http://\S+)", output)
        assert match, f"the lab did not start:\n{output}"
        return match.group(1)

    yield start
    for process in processes:
        process.terminate()
        assert process.wait(10) == 0


@pytest.fixture
def page(chromium, serve, request):
    """A fresh browser context; fails the test on any console error; keeps a screenshot.

    It asks for `serve` so that the screenshot is taken while the lab still runs.
    """
    with watched_page(chromium, request.node.name) as page:
        yield page


def routed(page, name: str):
    return page.locator(f'[data-backend="{name}"] [data-k="total"]')


def test_a_lesson_drives_the_lab_checks_predictions_and_remembers_progress(page, serve):
    url = serve("--algorithm", "least-connections")
    page.goto(url)
    expect(page.locator("#balancer-algorithm")).to_have_text("least-connections")
    page.goto(f"{url}lessons/round-robin")
    expect(page.locator("#lesson-heading")).to_have_text("Round robin")
    expect(page.locator("#balancer-algorithm")).to_have_text("round-robin")  # switched
    expect(page.locator("#lesson-applied")).to_contain_text(LESSON_APPLIED)
    expect(page.locator("#config-nginx")).to_contain_text("upstream lab")

    page.get_by_role("button", name="Send 6 requests").click()
    for name in ("b1", "b2", "b3"):
        expect(routed(page, name)).to_have_text("2")
    expect(page.locator(".directive-do .directive-status").first).to_have_text("done ✓")

    # A wrong guess about a number: the lab runs the experiment (b1 slowed by 500 ms, six
    # requests counted afresh), its claims judge the answers, and the page says what it measured.
    question = page.locator(".directive-predict")
    expect(question.locator(".predict-explain")).to_be_hidden()
    question.get_by_role("button", name="none: it skips the slow one").click()
    result = question.locator(".predict-result")
    expect(result).to_have_attribute("data-verdict", "wrong", timeout=30_000)
    expect(result).to_have_text(
        "✗ Not this time: the lab measured routed.b1 = 2 (routed.b1 >= 2), "
        "so the answer is “two: its full share”."
    )
    expect(question.locator("button.actual")).to_have_text("two: its full share")
    expect(question.locator("button.chosen")).to_have_text("none: it skips the slow one")
    expect(question.locator(".predict-explain")).to_contain_text("only at whose turn it is")
    expect(page.locator('[data-backend="b1"]')).to_have_attribute("data-latency", "500")

    # Its one button and one question both used: the lesson counts as done by itself.
    expect(page.locator("#lesson-done")).to_have_text("Done ✓")
    expect(page.locator("#lesson-progress")).to_have_text(f"1 of {COURSE} done")
    page.reload()
    expect(page.locator("#lesson-heading")).to_have_text("Round robin")
    expect(page.locator("#lesson-progress")).to_have_text(f"1 of {COURSE} done")
    expect(page.locator("#lesson-applied")).to_contain_text("as you left it")
    expect(routed(page, "b1")).to_have_text("2")  # a reload does not reset the lab
    page.get_by_role("button", name="All lessons").click()
    expect(page.locator('#lesson-index [data-slug="round-robin"] .lesson-mark')).to_have_text("✓")
    expect(page.locator('#lesson-index [data-slug="round-robin"]')).to_have_attribute(
        "aria-current", "page"
    )

    page.get_by_role("button", name="Next →").click()
    expect(page).to_have_url(f"{url}lessons/weighted-round-robin")
    expect(page.locator("#lesson-heading")).to_have_text("Weighted round robin")
    expect(page.locator('[data-backend="b1"] [data-k="weight"]')).to_have_text("5")
    expect(page.locator("#config-nginx")).to_contain_text("weight=5")
    expect(routed(page, "b1")).to_have_text("0")  # a new lesson counts afresh
    page.get_by_role("button", name="← Previous").click()
    expect(page).to_have_url(f"{url}lessons/round-robin")
    expect(page.locator('[data-backend="b1"] [data-k="weight"]')).to_have_text("1")
    page.go_back()
    expect(page.locator("#lesson-heading")).to_have_text("Weighted round robin")


HOSTILE = textwrap.dedent(
    """\
    ---
    title: "<img src=x onerror=window.pwned=1>"
    order: 1
    summary: "<script>window.pwned = 2</script>"
    ---
    <script>window.pwned = 3</script>

    <img src=x onerror="window.pwned = 4"> [x](javascript:window.pwned=5)

    ```do
    label: "<img src=x onerror=window.pwned=6>"
    run: {action: send, count: 1}
    ```

    ```predict
    question: "<script>window.pwned = 7</script>"
    choices: [b1, b2]
    ```

    ## Try this

    Nothing.
    """
)


def test_a_hostile_lesson_cannot_run_script(page, serve, tmp_path):
    (tmp_path / "01-hostile.md").write_text(HOSTILE, encoding="utf-8")
    url = serve(lessons=tmp_path)
    page.goto(f"{url}lessons/hostile")
    expect(page.locator("#lesson-heading")).to_have_text("<img src=x onerror=window.pwned=1>")
    body = page.locator("#lesson-body")
    expect(body).to_contain_text("<script>window.pwned = 3</script>")  # shown, as text
    expect(body.get_by_role("button", name="<img src=x onerror=window.pwned=6>")).to_be_visible()
    # The lesson's lab is in place (opening it starts afresh) before its button is pressed.
    expect(page.locator("#lesson-applied")).to_contain_text(
        "now has this lesson's settings", timeout=15_000
    )
    body.get_by_role("button", name="<img src=x onerror=window.pwned=6>").click()
    expect(routed(page, "b1")).to_have_text("1", timeout=10_000)
    expect(page.locator(".predict-question")).to_have_text("<script>window.pwned = 7</script>")
    assert page.locator("#lesson-panel script, #lesson-panel img").count() == 0
    assert page.evaluate("window.pwned") is None


# Each change of the lesson body's busy state, with what the status line said then.
WATCH_BUSY = """
addEventListener("DOMContentLoaded", () => {
  window.busy = [];
  const body = document.querySelector("#lesson-body");
  new MutationObserver(() => window.busy.push([
    body.inert, body.getAttribute("aria-busy"),
    document.querySelector("#lesson-applied").textContent,
  ])).observe(body, { attributes: true, attributeFilter: ["aria-busy"] });
});
"""


def test_a_lessons_buttons_wait_while_the_lab_switches_to_it(page, serve):
    url = serve()
    page.add_init_script(WATCH_BUSY)
    page.goto(f"{url}lessons/round-robin")
    button = page.get_by_role("button", name="Send 6 requests")
    # Pressed at once: the press waits for the lab, so all six meet the lesson's backends.
    button.click()
    expect(page.locator("#lesson-applied")).to_contain_text(LESSON_APPLIED)
    expect(page.locator(".directive-do .directive-status").first).to_have_text("done ✓")
    busy, free = page.evaluate("window.busy")
    assert busy == [True, "true", "Switching the lab to this lesson's settings…"]
    assert free[:2] == [False, None]
    for name in ("b1", "b2", "b3"):  # the lesson's round robin, from a fresh start
        expect(routed(page, name)).to_have_text("2")
