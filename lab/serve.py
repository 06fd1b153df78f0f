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
MAX_WEB_WORKERS = 16


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


def add_scale_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--web-workers",
        type=_workers,
        default=1,
        metavar="N",
        help=f"serve the page from N web processes (1-{MAX_WEB_WORKERS}) behind the lab's own "
        "balancer; more than one needs --message-queue",
    )
    parser.add_argument(
        "--message-queue",
        default=None,
        metavar="URL",
        help="a Redis server the web processes share, e.g. redis://127.0.0.1:6379/0 "
        "(pip install -e '.[scale]')",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start the lab: toy backends, a real balancer, traffic, and the page that shows it all."
    )
    add_page_arguments(parser)
    add_lab_arguments(parser)
    add_remote_control(parser)
    add_scale_out(parser)
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
    # Set by `lb-lab serve --web-workers N` for the web processes it starts, not by hand:
    # the queue that brings the lab's stream, and the process's name behind the balancer.
    parser.add_argument("--message-queue", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.set_defaults(run=run_web, parser=parser)


def _workers(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_WEB_WORKERS:
        raise argparse.ArgumentTypeError(f"--web-workers must be 1-{MAX_WEB_WORKERS}, got {text!r}")
    return int(text)


def check_scale_out(options: argparse.Namespace) -> None:
    """Refuse web workers that could not share the lab, with one clear line (exit 2)."""
    queue = getattr(options, "message_queue", None)
    if queue is not None and not queue.startswith(("redis://", "rediss://")):
        options.parser.error(
            f"--message-queue: expected a Redis URL like redis://127.0.0.1:6379/0, got {queue!r}"
        )
    if getattr(options, "web_workers", 1) > 1 and queue is None:
        options.parser.error(
            f"--web-workers {options.web_workers} needs --message-queue redis://HOST:PORT/DB: "
            "web processes share the lab's stream through it (one process needs none)"
        )


def _green() -> None:
    import warnings

    with warnings.catch_warnings():
        # eventlet warns that it is deprecated on import; the user chose it knowingly.
        warnings.simplefilter("ignore")
        import eventlet

    eventlet.monkey_patch()  # first: everything below must get green sockets and threads


def run(options: argparse.Namespace) -> int:
    check_scale_out(options)
    _green()
    if options.message_queue is not None:
        from lab.web.scaleout import serve_scaled

        return serve_scaled(options)
    from lab.web.server import serve

    return serve(options)


def run_web(options: argparse.Namespace) -> int:
    _green()
    from lab.web.server import serve_front

    return serve_front(options)
