"""Lesson markdown to HTML: markdown-it with raw HTML off, directives as empty placeholders.

Raw HTML in a lesson is shown as text, links may not use javascript: (or any
scheme markdown-it does not trust), and images are off; a `figure` block
shows one of the course's own pictures (lab.lessons.figures). A directive block
becomes `<div class="directive" data-directive="N" data-kind="do"></div>`;
the page builds its button, question or check from the JSON description with
DOM text nodes, so no lesson text ever reaches the page as markup.
"""

from __future__ import annotations

from html import escape

from markdown_it import MarkdownIt

from lab.lessons.directive_parser import Backends, parse_directive
from lab.lessons.directives import KINDS, Directive
from lab.lessons.errors import LessonError
from lab.lessons.figures import parse_figure


def markdown() -> MarkdownIt:
    """The one markdown dialect of lessons: CommonMark plus tables, no raw HTML, no images."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.disable("image")
    md.add_render_rule("fence", _fence)
    md.add_render_rule("heading_open", _heading)
    md.add_render_rule("heading_close", _heading)
    md.add_render_rule("link_open", _link)
    return md


def render_lesson(
    text: str, slug: str, backends: tuple[str, ...], first_line: int = 1
) -> tuple[str, tuple[Directive, ...]]:
    """The lesson's HTML and its directives in reading order.

    `first_line` is the line of the file where `text` begins, for error messages.
    """
    md = markdown()
    tokens = md.parse(text)
    directives: list[Directive] = []
    names = Backends(backends)
    for token in tokens:
        if token.type != "fence":
            continue
        kind = token.info.strip().split(" ")[0]
        line = first_line + (token.map[0] if token.map else 0)
        if kind == "figure":
            try:
                token.meta["figure"] = parse_figure(token.content)
            except LessonError as exc:
                raise exc.within(f"line {line}") from None
            continue
        if kind not in KINDS:
            continue
        try:
            directive = parse_directive(kind, token.content, slug, names)
        except LessonError as exc:
            raise exc.within(f"line {line}") from None
        token.meta["directive"] = len(directives)
        token.meta["kind"] = kind
        directives.append(directive)
    return md.renderer.render(tokens, md.options, {}), tuple(directives)


def _fence(renderer, tokens, idx, options, env) -> str:
    token = tokens[idx]
    if "figure" in token.meta:
        return token.meta["figure"].html()
    if "directive" in token.meta:
        return (
            f'<div class="directive directive-{token.meta["kind"]}" '
            f'data-directive="{token.meta["directive"]}" data-kind="{token.meta["kind"]}"></div>\n'
        )
    language = token.info.strip().split(" ")[0]
    css = f' class="language-{escape(language)}"' if language else ""
    return f"<pre><code{css}>{escape(token.content, quote=False)}</code></pre>\n"


def _heading(renderer, tokens, idx, options, env) -> str:
    # The lesson's title is the panel's heading, so the text's headings sit one level below.
    token = tokens[idx]
    level = min(int(token.tag[1]) + 1, 6)
    return f"<h{level}>" if token.nesting == 1 else f"</h{level}>\n"


def _link(renderer, tokens, idx, options, env) -> str:
    token = tokens[idx]
    href = str(token.attrGet("href") or "")
    if not href.startswith(("/", "#")):  # leaving the lab: a new tab, and tell it nothing
        token.attrSet("target", "_blank")
        token.attrSet("rel", "noopener noreferrer")
    return renderer.renderToken(tokens, idx, options, env)
