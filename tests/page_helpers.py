"""What the browser tests share: the page's test hook and its commands.

The page puts its store, scene and `command` on its lab root element
(static/js/page.js), so a test sends exactly what a button would send.
"""

from __future__ import annotations

LAB = 'document.querySelector("[data-lab]").lab'
# What the lesson panel says once the lab has a lesson's settings (while it switches, it
# says "Switching the lab to this lesson's settings…", and the lesson's buttons wait).
LESSON_APPLIED = "The lab now has this lesson's settings"


def command(page, **data) -> dict:
    """Send a command through the page, as its buttons do; the lab must accept it."""
    answer = page.evaluate(f"(data) => {LAB}.command(data)", data)
    assert answer["ok"], answer
    return answer
