"""Figures: pictures a lesson shows, drawn for the course and shipped with the page.

A lesson puts one in with a fenced block (not a directive: it does nothing):

    ```figure
    name: dns            # static/figures/dns.svg
    alt: Two data centres behind one name ...   # what the picture shows, for a screen reader
    caption: DNS answers with an address per data centre.    # optional
    ```

Lesson markdown has raw HTML and images off (lab.lessons.render), so this is
the only way a picture gets in: the name must be one of FIGURES, each a file
of the lab's own under static/figures/ (no outside asset, and nothing a
lesson writes becomes markup: alt and caption are escaped text).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

import yaml

from lab.lessons.errors import LessonError

FIGURES = ("dns", "anycast-ecmp", "direct-server-return", "balancer-pair")
MAX_TEXT = 400


@dataclass(frozen=True)
class Figure:
    name: str
    alt: str
    caption: str = ""

    def html(self) -> str:
        caption = f"<figcaption>{escape(self.caption)}</figcaption>" if self.caption else ""
        return (
            f'<figure class="lesson-figure"><img src="/static/figures/{self.name}.svg" '
            f'alt="{escape(self.alt)}">{caption}</figure>\n'
        )


def parse_figure(text: str) -> Figure:
    """A figure block's YAML; LessonError saying what is wrong."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LessonError(f"the figure block is not valid YAML ({exc.problem})") from None
    if not isinstance(data, dict):
        raise LessonError("a figure block is a mapping of name, alt and caption")
    unknown = sorted(set(data) - {"name", "alt", "caption"})
    if unknown:
        raise LessonError(f"a figure takes name, alt and caption, not {unknown[0]!r}")
    name = data.get("name")
    if name not in FIGURES:
        raise LessonError(f"no figure {name!r} (figures: {', '.join(FIGURES)})")
    for key in ("alt", "caption"):
        value = data.get(key, "")
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise LessonError(f"a figure's {key} is text of at most {MAX_TEXT} characters")
    if not data.get("alt"):
        raise LessonError("a figure needs alt: what it shows, in words")
    return Figure(name, data["alt"], data.get("caption", ""))
