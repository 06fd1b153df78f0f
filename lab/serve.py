"""`lb-lab` / `lb-lab serve`: the whole lab, in the browser; `lb-lab web`: one more page for it.

`serve` starts the lab service (lab.service: toy backends, a real balancer
between them and a traffic generator aimed at it, all on loopback), then
serves the page that animates every routing decision. Ctrl-C or SIGTERM stops
every child; if the lab itself is SIGKILLed, the children notice and exit on
their own (lab.lifecycle).

`web --lab URL` serves the same page for a lab service that already runs
(the URL `serve` prints as "service:"): a second screen on the same lab.

These are the only entry points that run eventlet: `run` monkey-patches before
anything that opens a socket is imported. Nothing else in the lab imports it.
"""

from __future__ import annotations

import argparse

from lab.service.options import add_lab_arguments, port

DEFAULT_PORT = 5000


def add_page_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address for the page (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=port,
        default=None,
        help=f"port for the page (default {DEFAULT_PORT}, or any free one if it is busy)",
    )


def add_remote_control(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-remote-control",
        action="store_true",
        help="with a --host beyond loopback, let browsers on other machines command the lab "
        "(by default they may only watch)",
    )
    parser.add_argument(
        "--classroom",
        action="store_true",
        help="one presenter, many viewers: print a viewer URL and a presenter URL with a "
        "secret token; only the presenter commands the lab",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start the lab: toy backends, a real balancer, traffic, and the page that shows it all."
    )
    add_page_arguments(parser)
    add_lab_arguments(parser)
    add_remote_control(parser)
    parser.set_defaults(run=run, parser=parser)


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Serve one more page for a lab that already runs (lb-lab serve prints its service URL)."
    )
    parser.add_argument(
        "--lab", required=True, metavar="URL", help="the lab service, e.g. http://127.0.0.1:40000/"
    )
    add_page_arguments(parser)
    add_remote_control(parser)
    parser.set_defaults(run=run_web, parser=parser)


def _green() -> None:
    import warnings

    with warnings.catch_warnings():
        # eventlet warns that it is deprecated on import; the user chose it knowingly.
        warnings.simplefilter("ignore")
        import eventlet

    eventlet.monkey_patch()  # first: everything below must get green sockets and threads


def run(options: argparse.Namespace) -> int:
    _green()
    from lab.web.server import serve

    return serve(options)


def run_web(options: argparse.Namespace) -> int:
    _green()
    from lab.web.server import serve_front

    return serve_front(options)
