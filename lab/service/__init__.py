"""The lab service: one lab, with no page, steered through a small API on loopback.

It owns the lab (lab.web.controller: the children, the commands, the lessons
applied, the relay and its exact counters) and speaks lab.service.api to any
number of web fronts. It imports no Flask, Socket.IO or eventlet: those live in
the web front only. `lb-lab serve` starts it as a child; `lb-lab web --lab URL`
shows a running one.
"""

from __future__ import annotations

import argparse

from lab.service.options import add_lab_arguments, check_algorithm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the service's flags: the lab's own, and where its API listens."""
    parser.description = (
        "Run one lab (backends, balancer, traffic) with no page: web fronts show and steer it "
        "through its API (GET /stream, POST /command)."
    )
    add_lab_arguments(parser)
    parser.add_argument(
        "--api", default="127.0.0.1:0", metavar="HOST:PORT",
        help="where the API listens (default 127.0.0.1 on any free port)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=None, help="seed the lab, to replay a run")
    parser.set_defaults(run=run, parser=parser)


def run(options: argparse.Namespace) -> int:
    from lab.service.daemon import run as run_service

    check_algorithm(options)
    return run_service(options)
