"""The `lb-lab` command: one subcommand per lab process."""

from __future__ import annotations

import argparse
import sys

from lab import __version__


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one clear line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def build_parser() -> Parser:
    from lab.backend import add_arguments as add_backend_arguments
    from lab.balancer.options import add_arguments as add_balancer_arguments
    from lab.bench import add_arguments as add_bench_arguments
    from lab.lessons.command import add_arguments as add_lessons_arguments
    from lab.recording.export import add_arguments as add_export_arguments
    from lab.recording.record import add_arguments as add_record_arguments
    from lab.serve import add_arguments as add_serve_arguments
    from lab.serve import add_web_arguments
    from lab.service import add_arguments as add_service_arguments
    from lab.traffic import add_arguments as add_traffic_arguments
    from lab.vocabulary.cli import add_arguments as add_schema_arguments

    parser = Parser(
        prog="lb-lab", description="Load Balancing Lab: watch a real load balancer work."
    )
    parser.add_argument("--version", action="version", version=f"lb-lab {__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    add_serve_arguments(commands.add_parser("serve", help="start the whole lab (the default)"))
    add_balancer_arguments(commands.add_parser("balancer", help="run the balancer daemon alone"))
    add_backend_arguments(commands.add_parser("backend", help="run one toy backend"))
    add_traffic_arguments(commands.add_parser("traffic", help="send traffic through the balancer"))
    add_bench_arguments(commands.add_parser("bench", help="benchmark the balancer against peers"))
    add_lessons_arguments(commands.add_parser("lessons", help="list the lessons"))
    add_schema_arguments(commands.add_parser("schema", help="print the lab's vocabulary"))
    add_service_arguments(commands.add_parser("service", help="run one lab, for web fronts"))
    add_web_arguments(commands.add_parser("web", help="one more page for a running lab"))
    add_record_arguments(commands.add_parser("record", help="record a running lab to a file"))
    add_export_arguments(commands.add_parser("export", help="a recording as a page to put online"))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["serve", *argv]
    options = parser.parse_args(argv)
    return int(options.run(options) or 0)
