"""`lb-lab schema`: print the lab's vocabulary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print the lab's vocabulary (event kinds, the state and batch messages, the commands) "
        "as JSON Schema, or as markdown with --markdown."
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the README's contract section instead"
    )
    parser.add_argument(
        "--update-readme",
        metavar="PATH",
        type=Path,
        help="rewrite the contract section of this README (between its markers)",
    )
    parser.set_defaults(run=run)


def run(options: argparse.Namespace) -> int:
    from lab.vocabulary.document import document, markdown

    if options.update_readme:
        from lab.vocabulary.readme import update

        changed = update(options.update_readme, markdown())
        print(f"{options.update_readme}: {'updated' if changed else 'already up to date'}")
        return 0
    print(markdown() if options.markdown else json.dumps(document(), indent=2))
    return 0
