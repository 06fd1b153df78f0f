"""Lesson text becomes safe HTML: no markup from a lesson gets through, links open safely."""

from __future__ import annotations

import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_lessons import lesson_text

from lab.lessons.catalog import parse_lesson
from lab.lessons.errors import LessonError


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


HOSTILE = textwrap.dedent(
    """\
    ---
    title: "<script>alert('title')</script>"
    order: 1
    summary: "<img src=x onerror=alert(1)>"
    ---
    <script>window.pwned = 1</script>

    <img src=x onerror="window.pwned = 2">

    [click](javascript:window.pwned=3) [data](data:text/html;base64,PHNjcmlwdD4=)
    ![x](javascript:window.pwned=4)

    <a href="javascript:window.pwned=5">raw link</a>

    ```html
    <script>window.pwned = 6</script>
    ```

    ```do
    label: "<script>window.pwned = 7</script>"
    run: {action: send, count: 1}
    ```
    """
)
ALLOWED_TAGS = {"p", "a", "pre", "code", "div", "h2", "h3", "h4", "ul", "ol", "li", "em"}


def test_lesson_text_can_never_carry_script():
    lesson = parse_lesson(HOSTILE, "hostile")
    parser = Tags()
    parser.feed(lesson.html)
    assert {tag for tag, _ in parser.tags} <= ALLOWED_TAGS
    for tag, attrs in parser.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert not (attrs.get("href") or "").lower().startswith(("javascript:", "data:"))
    assert "<script" not in lesson.html and "<img" not in lesson.html
    assert "&lt;script&gt;window.pwned = 6" in lesson.html  # shown as code, as written
    # Directive text stays data: the page puts it in with textContent.
    assert lesson.directives[0].public()["label"] == "<script>window.pwned = 7</script>"
    assert '<div class="directive directive-do" data-directive="0" data-kind="do"></div>' in (
        lesson.html
    )


def test_rendering_shifts_headings_and_opens_outside_links_safely():
    lesson = parse_lesson(
        lesson_text(body="## Part\n\n[out](https://example.org) [in](/lessons/round-robin)\n"),
        "links",
    )
    assert "<h3>Part</h3>" in lesson.html
    assert '<a href="https://example.org" target="_blank" rel="noopener noreferrer">' in (
        lesson.html
    )
    assert '<a href="/lessons/round-robin">in</a>' in lesson.html


def test_a_figure_is_one_of_the_courses_own_pictures_with_its_words_escaped():
    from lab.lessons.figures import FIGURES

    static = Path(__file__).resolve().parents[1] / "static" / "figures"
    for name in FIGURES:  # every figure a lesson may name is shipped, and is an SVG
        assert (static / f"{name}.svg").read_text().lstrip().startswith("<svg")
    body = '```figure\nname: dns\nalt: "A <b>bold</b> claim"\ncaption: Two sites & one name\n```\n'
    lesson = parse_lesson(lesson_text(body=body), "figures")
    assert (
        '<figure class="lesson-figure"><img src="/static/figures/dns.svg" '
        'alt="A &lt;b&gt;bold&lt;/b&gt; claim"><figcaption>Two sites &amp; one name'
        "</figcaption></figure>"
    ) in lesson.html
    assert lesson.directives == ()  # a picture, not a step


@pytest.mark.parametrize(
    "block, words",
    [
        ("name: ../../etc/passwd\nalt: x", "no figure '../../etc/passwd'"),
        ("name: dns", "a figure needs alt"),
        ("name: dns\nalt: x\nsrc: http://example.org/a.svg", "not 'src'"),
        ("[dns]", "a mapping of name, alt and caption"),
    ],
)
def test_a_bad_figure_is_refused_with_its_line(block, words):
    with pytest.raises(LessonError) as caught:
        parse_lesson(lesson_text(body=f"Text.\n\n```figure\n{block}\n```\n"), "bad-figure")
    assert words in str(caught.value) and "line" in str(caught.value)
