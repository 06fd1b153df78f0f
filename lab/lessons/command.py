"""`lb-lab lessons`: the course in the terminal, and a check of every lesson file."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "List the lessons: order, slug (open http://127.0.0.1:5000/lessons/SLUG), title and "
        "summary. A lesson file that does not check out is named on stderr, with why."
    )
    parser.add_argument(
        "--folder", metavar="DIR", help="a folder of lesson files (default: the lab's own)"
    )
    parser.add_argument(
        "--drafts", action="store_true", help="also list draft lessons (marked 'draft')"
    )
    parser.set_defaults(run=run)


def run(options: argparse.Namespace) -> int:
    from lab.lessons.catalog import Catalog

    catalog = Catalog(options.folder, drafts=options.drafts or None)
    lessons = catalog.lessons()
    if not lessons and not catalog.errors:
        print(f"lb-lab lessons: no lessons in {catalog.folder}", file=sys.stderr)
        return 1
    width = max((len(lesson.slug) for lesson in lessons), default=0)
    for lesson in lessons:
        draft = "  (draft)" if lesson.draft else ""
        print(f"{lesson.order:>3}  {lesson.slug:<{width}}  {lesson.title}{draft}")
        print(f"     {'':<{width}}  {lesson.summary}")
    for _, error in sorted(catalog.errors.items()):
        print(f"lb-lab lessons: left out {error}", file=sys.stderr)
    return 1 if catalog.errors else 0
