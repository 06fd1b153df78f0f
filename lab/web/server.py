"""Run the web lab under eventlet's WSGI server until Ctrl-C, SIGTERM or a broken lab.

Imported only by `lb-lab serve`, after `eventlet.monkey_patch()`.
"""

from __future__ import annotations

import argparse
import signal
import socket

import eventlet
import eventlet.wsgi

from lab.balancer.algorithms import ALGORITHM_NAMES
from lab.supervisor import StartError
from lab.web.app import create_app, socketio
from lab.web.controller import LabController, LabSettings

STOP_POLL_S = 0.2


class Shutdown:
    """Set by a signal handler; read by the main loop (a handler must not switch greenlets)."""

    def __init__(self) -> None:
        self.requested = False

    def request(self, *_: object) -> None:
        self.requested = True


def side_by_side(jobs: list) -> None:
    """Run jobs in green threads and wait for all; the first failure is raised."""
    pool = eventlet.GreenPool()
    running = [pool.spawn(job) for job in jobs]
    for thread in running:
        thread.wait()


def listen(host: str, port: int | None, default: int) -> eventlet.greenio.GreenSocket:
    """The page's listening socket; the default port falls back to any free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return eventlet.listen((host, default if port is None else port), family)
    except OSError:
        if port is not None:
            raise
        return eventlet.listen((host, 0), family)


def serve(options: argparse.Namespace) -> int:
    from lab.serve import DEFAULT_PORT

    if options.algorithm not in ALGORITHM_NAMES:
        options.parser.error(
            f"unknown algorithm {options.algorithm!r}; choose one of: {', '.join(ALGORITHM_NAMES)}"
        )
    try:
        sock = listen(options.host, options.port, DEFAULT_PORT)
    except OSError as exc:
        print(f"lb-lab: cannot serve the page on {options.host}:{options.port}: {exc.strerror}")
        return 1
    settings = LabSettings(
        backends=options.backends,
        mode=options.mode,
        algorithm=options.algorithm,
        balancer_port=options.balancer_port,
        first_backend_port=options.backend_port,
        rate=options.rate,
        clients=options.clients,
        paused=options.paused,
    )
    controller = LabController(settings)
    shutdown = Shutdown()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, shutdown.request)
    try:
        controller.start(side_by_side)
    except StartError as exc:
        print(f"lb-lab: could not start the lab: {exc}")
        sock.close()
        return 1
    try:
        loopback = options.host in ("127.0.0.1", "localhost", "::1")
        app = create_app(
            {"CONTROLLER": controller, "ASYNC_MODE": "eventlet", "LOOPBACK_ONLY": loopback}
        )
        print(welcome(controller, sock.getsockname()), flush=True)
        socketio.start_background_task(eventlet.wsgi.server, sock, app, log_output=False)
        while not shutdown.requested and not controller.problem:
            socketio.sleep(STOP_POLL_S)
        if controller.problem:
            print(f"lb-lab: {controller.problem}; stopping", flush=True)
            return 1
        return 0
    finally:
        controller.close()
        sock.close()


def welcome(controller: LabController, page: tuple) -> str:
    """What the lab prints once it runs: the URL first, then how to reach each part."""
    host, port = page[0], page[1]
    shown = f"[{host}]" if ":" in host else host
    addresses = controller.addresses
    settings = controller.settings
    backends = ", ".join(f"{r.name} {r.address}" for r in controller.backends.values())
    traffic = (
        f"  traffic:  {settings.rate:g} req/s from {settings.clients} clients"
        f"{' (paused)' if settings.paused else ''}, control {addresses['traffic']}"
        if "traffic" in addresses
        else f"  traffic:  not running ({controller.traffic_error})"
    )
    exposed = (
        ""
        if host in ("127.0.0.1", "::1", "localhost")
        else "  note: the page and its controls can be reached from other machines\n"
    )
    return (
        f"\nLoad Balancing Lab: http://{shown}:{port}/\n{exposed}"
        f"  backends: {backends}\n"
        f"  balancer: {settings.mode}, {settings.algorithm}, on {addresses['listen']}"
        f" (admin {addresses['admin']})\n"
        f"{traffic}\n"
        f"  curl -i http://{addresses['listen']}/     # see X-Backend change on every request\n"
        f"  curl http://{addresses['admin']}/state    # every backend's numbers\n"
        f"  curl -N http://{addresses['admin']}/events   # every routing decision, live\n"
        f"Press Ctrl-C to stop."
    )
