"""`lb-lab serve`: start toy backends and the balancer between them, and say how to use them.

The web lab (the page that animates every decision) builds on this; until it
lands, `serve` gives a learner a running balancer to curl and a stream to watch.
"""

from __future__ import annotations

import argparse
import signal
import socket
import threading

DEFAULT_BACKEND_PORT = 9001


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Start the lab: toy backends and a real balancer between them."
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8080, help="balancer port (default 8080; busy -> any free)"
    )
    parser.add_argument(
        "--backends", type=_backend_count, default=3, help="how many toy backends (1-12)"
    )
    parser.add_argument("--mode", choices=("http", "tcp"), default="http")
    parser.add_argument("--algorithm", default="round-robin")
    parser.set_defaults(run=run, parser=parser)


def _backend_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 12:
        raise argparse.ArgumentTypeError(f"--backends must be 1-12, got {text!r}")
    return int(text)


def port_or_any(host: str, port: int) -> int:
    """`port` if it is free now, else 0 so the child picks a free one and reports it."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return 0
    return port


def run(options: argparse.Namespace) -> int:
    from lab.balancer.algorithms import ALGORITHM_NAMES
    from lab.supervisor import StartError, Supervisor

    if options.algorithm not in ALGORITHM_NAMES:
        options.parser.error(
            f"unknown algorithm {options.algorithm!r}; choose one of: {', '.join(ALGORITHM_NAMES)}"
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Supervisor() as supervisor:
        try:
            backends = []
            for i in range(1, options.backends + 1):
                port = port_or_any(options.host, DEFAULT_BACKEND_PORT + i - 1)
                child = supervisor.start(
                    f"b{i}",
                    ["backend", "--name", f"b{i}", "--host", options.host, "--port", str(port)],
                )
                backends.append(f"b{i}={child.addresses['listen']}")
            port = port_or_any(options.host, options.port)
            args = [
                "balancer",
                "--mode",
                options.mode,
                "--algorithm",
                options.algorithm,
                "--listen",
                f"{options.host}:{port}",
                "--admin",
                f"{options.host}:0",
            ]
            for spec in backends:
                args += ["--backend", spec]
            balancer = supervisor.start("balancer", args)
        except StartError as exc:
            print(f"lb-lab: could not start the lab: {exc}")
            return 1
        listen, admin = balancer.addresses["listen"], balancer.addresses["admin"]
        print(
            f"\nLoad Balancing Lab is running: {options.backends} backends behind a {options.mode} "
            f"balancer ({options.algorithm}).\n"
            f"  curl -i http://{listen}/            # see X-Backend change on every request\n"
            f"  curl http://{admin}/state           # every backend's numbers\n"
            f"  curl -N http://{admin}/events       # every routing decision, live\n"
            f"Press Ctrl-C to stop.",
            flush=True,
        )
        while not stop.is_set():
            if not all(child.alive() for child in supervisor.children.values()):
                print("lb-lab: a lab process exited unexpectedly; stopping")
                return 1
            stop.wait(0.5)
    return 0
