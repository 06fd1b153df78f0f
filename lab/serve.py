"""`lb-lab` / `lb-lab serve`: the whole lab, in the browser.

Starts toy backends, a real balancer between them and a traffic generator
aimed at it (all on loopback), then serves the page that animates every
routing decision. Ctrl-C or SIGTERM stops every child; if the lab itself is
SIGKILLed, the children notice and exit on their own (lab.lifecycle).

This is the only entry point that runs eventlet: `run` monkey-patches before
anything that opens a socket is imported. Nothing else in the lab imports it.
"""

from __future__ import annotations

import argparse

from lab.traffic.settings import MAX_CLIENTS, MAX_RATE

DEFAULT_PORT = 5000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Start the lab: toy backends, a real balancer, traffic, and the page that shows it all."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address for the page (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"port for the page (default {DEFAULT_PORT}, or any free one if it is busy)",
    )
    parser.add_argument(
        "--backends", type=_backend_count, default=3, help="how many toy backends (1-12)"
    )
    parser.add_argument(
        "--mode", choices=("http", "tcp"), default="http", help="http = Layer 7 (default), tcp = L4"
    )
    parser.add_argument(
        "--algorithm", default="round-robin", metavar="NAME", help="to start with (round-robin)"
    )
    parser.add_argument(
        "--balancer-port",
        type=_port,
        default=8080,
        help="the balancer's port (default 8080, or any free one if it is busy; 0 = any)",
    )
    parser.add_argument(
        "--backend-port",
        type=_port,
        default=9001,
        help="the first backend's port; b2 takes the next (default 9001; 0 = any free ones)",
    )
    parser.add_argument(
        "--rate", type=_rate, default=2.0, help=f"requests per second, 0-{MAX_RATE:g} (default 2)"
    )
    parser.add_argument(
        "--clients",
        type=_clients,
        default=4,
        help=f"simulated clients, 1-{MAX_CLIENTS} (default 4)",
    )
    parser.add_argument("--paused", action="store_true", help="start with traffic paused")
    parser.add_argument(
        "--allow-remote-control",
        action="store_true",
        help="with a --host beyond loopback, let browsers on other machines command the lab "
        "(by default they may only watch)",
    )
    parser.set_defaults(run=run, parser=parser)


def _backend_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 12:
        raise argparse.ArgumentTypeError(f"--backends must be 1-12, got {text!r}")
    return int(text)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= MAX_RATE:
        raise argparse.ArgumentTypeError(f"--rate must be 0-{MAX_RATE:g}, got {text!r}")
    return value


def _clients(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_CLIENTS:
        raise argparse.ArgumentTypeError(f"--clients must be 1-{MAX_CLIENTS}, got {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {text!r}")
    return int(text)


def run(options: argparse.Namespace) -> int:
    import warnings

    with warnings.catch_warnings():
        # eventlet warns that it is deprecated on import; the user chose it knowingly.
        warnings.simplefilter("ignore")
        import eventlet

    eventlet.monkey_patch()  # first: everything below must get green sockets and threads

    from lab.web.server import serve

    return serve(options)
