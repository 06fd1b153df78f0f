"""Lesson files: front matter and markdown in, checked `Lesson`s out, in course order.

A lesson is `lessons/NN-slug.md`:

    ---
    title: Round robin
    order: 4
    summary: Each backend in turn, in a circle, whatever its load.
    settings: {...}          # see lab.lessons.settings
    draft: true              # optional: checked, but left out of the course for now
    formerly: [old-slug]     # optional: slugs it had before; their links redirect here
    ---
    Markdown text, with `do`, `predict` and `expect` blocks (lab.lessons.directives).

The slug (the deep link /lessons/<slug>) is the file name without its number.
A lesson whose file is renamed declares its old slugs in `formerly`, so that a
link someone saved keeps working (the page redirects it); an old slug may not be
a current lesson's slug, nor another lesson's old one.
The catalog re-reads a file when it changes, so an author sees an edit on reload.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lab.lessons.directives import Directive
from lab.lessons.errors import LessonError
from lab.lessons.render import render_lesson
from lab.lessons.settings import LabSetup, parse_setup

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
FILE_NAME = re.compile(r"^(?:\d+-)?(?P<slug>.+)\.md$")
MAX_BYTES = 256 * 1024
ENVIRONMENT = "LB_LAB_LESSONS"  # a folder of lessons to use instead of the lab's own
DRAFTS = "LB_LAB_DRAFTS"  # "1": show draft lessons too (for their authors)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lesson:
    slug: str
    title: str
    order: int
    summary: str
    setup: LabSetup
    html: str
    directives: tuple[Directive, ...]
    path: Path | None = None
    draft: bool = False
    formerly: tuple[str, ...] = ()

    def listing(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "order": self.order,
            "title": self.title,
            "summary": self.summary,
        }


def default_folder() -> Path:
    """$LB_LAB_LESSONS, or the repository's lessons/, or the installed share/lb-lab/lessons."""
    chosen = os.environ.get(ENVIRONMENT)
    if chosen:
        return Path(chosen)
    repo = Path(__file__).resolve().parents[2] / "lessons"
    if repo.is_dir():
        return repo
    return Path(sys.prefix) / "share" / "lb-lab" / "lessons"


def split_front_matter(text: str) -> tuple[dict, str, int]:
    """(front matter, markdown body, the body's first line number)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise LessonError("a lesson starts with '---' and YAML front matter")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise LessonError("the front matter has no closing '---'") from None
    try:
        front = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0]
        raise LessonError(f"the front matter is not valid YAML ({first})") from None
    if not isinstance(front, dict):
        raise LessonError("the front matter is a mapping with title, order, summary, settings")
    return front, "\n".join(lines[end + 1 :]), end + 2


def parse_lesson(text: str, slug: str, path: Path | None = None) -> Lesson:
    """Check a whole lesson; raise LessonError naming the first problem and where."""
    if not SLUG.match(slug):
        raise LessonError(f"a slug is lower-case words joined by '-', got {slug!r}")
    front, body, first_line = split_front_matter(text)
    unknown = sorted(set(front) - {"title", "order", "summary", "settings", "draft", "formerly"})
    if unknown:
        raise LessonError(f"unknown front matter key {unknown[0]!r}")
    title, summary, order = front.get("title"), front.get("summary"), front.get("order")
    for key, value in (("title", title), ("summary", summary)):
        if not isinstance(value, str) or not value.strip() or "\n" in value.strip():
            raise LessonError(f"{key} must be one line of text")
    if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 999:
        raise LessonError(f"order must be a whole number 0-999, got {order!r}")
    draft = front.get("draft", False)
    if not isinstance(draft, bool):
        raise LessonError(f"draft must be true or false, got {draft!r}")
    formerly = _formerly(front.get("formerly", []), slug)
    setup = parse_setup(front.get("settings"))
    html, directives = render_lesson(body, slug, tuple(setup.names), first_line)
    return Lesson(
        slug, title.strip(), order, summary.strip(), setup, html, directives, path, draft, formerly
    )


def _formerly(value: object, slug: str) -> tuple[str, ...]:
    """The old slugs a lesson declares: a list of slugs, none of them its own."""
    if not isinstance(value, list):
        raise LessonError(f"formerly is a list of old slugs, e.g. [old-slug], got {value!r}")
    for old in value:
        if not isinstance(old, str) or not SLUG.match(old):
            raise LessonError(
                f"formerly: an old slug is lower-case words joined by '-', got {old!r}"
            )
        if old == slug:
            raise LessonError(f"formerly: {old!r} is this lesson's own slug")
    return tuple(dict.fromkeys(value))


def read_lesson(path: Path) -> Lesson:
    match = FILE_NAME.match(path.name)
    slug = match["slug"] if match else path.stem
    try:
        if path.stat().st_size > MAX_BYTES:
            raise LessonError(f"a lesson is at most {MAX_BYTES // 1024} KiB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LessonError(f"cannot read it: {exc}", path.name) from None
    try:
        return parse_lesson(text, slug, path)
    except LessonError as exc:
        raise exc.within(path.name) from None


class Catalog:
    """The lessons of one folder, in course order, re-read when a file changes."""

    def __init__(self, folder: Path | str | None = None, drafts: bool | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()
        self.drafts = os.environ.get(DRAFTS) == "1" if drafts is None else drafts
        self.errors: dict[str, str] = {}  # file name -> why it was left out
        self._cache: dict[Path, tuple[tuple[int, int], Lesson | None, str]] = {}
        self._renamed: dict[str, str] = {}  # old slug -> the lesson's slug now
        self._lock = threading.Lock()

    def lessons(self) -> list[Lesson]:
        """Every good lesson, by order then slug; broken files are logged and left out,
        and so are drafts unless the catalog shows them."""
        with self._lock:
            found = []
            paths = sorted(self.folder.glob("*.md")) if self.folder.is_dir() else []
            errors: dict[str, str] = {}
            owners: dict[str, str] = {}
            for path in paths:
                lesson = self._load(path, errors)
                if lesson is None:
                    continue
                if lesson.slug in owners:
                    first = owners[lesson.slug]
                    errors[path.name] = f"{path.name}: the same slug as {first} ({lesson.slug})"
                    continue
                owners[lesson.slug] = path.name
                if self.drafts or not lesson.draft:
                    found.append(lesson)
            self._cache = {p: v for p, v in self._cache.items() if p in paths}
            self._renamed = _old_slugs(found, owners, errors)
            self.errors = errors
        return sorted(found, key=lambda lesson: (lesson.order, lesson.slug))

    def renamed(self, slug: str) -> str | None:
        """The slug now of the lesson that was once `slug`, or None."""
        self.lessons()
        with self._lock:
            return self._renamed.get(slug)

    def _load(self, path: Path, errors: dict[str, str]) -> Lesson | None:
        try:
            info = path.stat()
        except OSError:
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        cached = self._cache.get(path)
        if cached is None or cached[0] != stamp:
            try:
                cached = (stamp, read_lesson(path), "")
            except LessonError as exc:
                log.warning("lesson left out: %s", exc)
                cached = (stamp, None, str(exc))
            self._cache[path] = cached
        if cached[2]:
            errors[path.name] = cached[2]
        return cached[1]

    def get(self, slug: str) -> Lesson | None:
        return next((lesson for lesson in self.lessons() if lesson.slug == slug), None)

    def neighbours(self, slug: str) -> tuple[Lesson | None, Lesson | None]:
        """The lessons before and after `slug` in course order."""
        lessons = self.lessons()
        at = next((i for i, lesson in enumerate(lessons) if lesson.slug == slug), None)
        if at is None:
            return None, None
        before = lessons[at - 1] if at > 0 else None
        after = lessons[at + 1] if at + 1 < len(lessons) else None
        return before, after


def _old_slugs(lessons: list[Lesson], owners: dict[str, str], errors: dict[str, str]) -> dict:
    """Old slug -> new slug; a clash (an old slug in use now, or claimed twice) is an
    error for the lesson that declares it, and that old link stays unknown."""
    renamed: dict[str, str] = {}
    claimed: dict[str, str] = {}
    for lesson in lessons:
        name = lesson.path.name if lesson.path else lesson.slug
        for old in lesson.formerly:
            if old in owners:
                errors[name] = f"{name}: formerly {old!r} is the slug of {owners[old]}"
            elif old in claimed:
                errors[name] = f"{name}: formerly {old!r} is claimed by {claimed[old]} too"
                renamed.pop(old, None)
            else:
                claimed[old] = name
                renamed[old] = lesson.slug
    return renamed
