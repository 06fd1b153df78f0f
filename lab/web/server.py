"""Run the web lab under eventlet's WSGI server until Ctrl-C, SIGTERM or a broken lab.

Imported only by `lb-lab serve`, after `eventlet.monkey_patch()`.

Start-up is a race against the clock (the page should show healthy backends
within 3 s of launching `lb-lab`), so the work overlaps: the lab's processes
start first, Flask is imported while they boot, and the page is served, and its
URL printed, while they finish, so that a browser opened at once has loaded it
by the time the lab's first `state` arrives.
"""

from __future__ import annotations

import argparse
import signal
import socket

import eventlet
import eventlet.wsgi

from lab.balancer.algorithms import ALGORITHM_NAMES
from lab.supervisor import StartError
from lab.web.access import Access
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
    starting = start_in_background(controller)
    access = Access.for_bind(options.host, options.allow_remote_control)
    app, socketio = serve_page(sock, access)
    try:
        starting.wait()
    except StartError as exc:
        print(f"lb-lab: could not start the lab: {exc}")
        sock.close()
        return 1
    try:
        go_live(app, socketio, controller)
        while not shutdown.requested and not controller.problem:
            socketio.sleep(STOP_POLL_S)
        if controller.problem:
            print(f"lb-lab: {controller.problem}; stopping", flush=True)
            return 1
        return 0
    finally:
        controller.close()
        sock.close()


def start_in_background(controller: LabController) -> eventlet.greenthread.GreenThread:
    """Start the lab in a green thread; return once its backends have been launched."""
    starting = eventlet.spawn(controller.start, side_by_side)
    backends = controller.settings.backends
    while len(controller.supervisor.children) < backends and not starting.dead:
        eventlet.sleep(0)  # let it reach the point where it waits for them to boot
    return starting


def serve_page(sock: eventlet.greenio.GreenSocket, access: Access) -> tuple:
    """Serve the page (with no controller yet) and print its URL; return the app and socketio."""
    from lab.web.app import create_app, socketio  # Flask: about 0.3 s, while the backends boot

    app = create_app({"CONTROLLER": None, "ASYNC_MODE": "eventlet", "ACCESS": access})
    socketio.start_background_task(eventlet.wsgi.server, sock, app, log_output=False)
    print(page_line(sock.getsockname(), access), flush=True)
    return app, socketio


def go_live(app, socketio, controller: LabController) -> None:
    """Hand the started lab to the page: commands, the relay, and a `state` for every browser."""
    app.config["CONTROLLER"] = controller  # what create_app does with one it is given
    controller.attach(socketio.emit, socketio.start_background_task, socketio.sleep)
    state = controller.describe()
    if state is not None:  # the browsers that came while the lab started have none yet
        socketio.emit("state", state)
    print(welcome(controller), flush=True)


def page_line(page: tuple, access: Access) -> str:
    """What the lab prints first: the page's URL (and who else can reach it, if anyone)."""
    host, port = page[0], page[1]
    shown = f"[{host}]" if ":" in host else host
    notice = access.notice()
    return f"\nLoad Balancing Lab: http://{shown}:{port}/" + (f"\n  {notice}" if notice else "")


def welcome(controller: LabController) -> str:
    """What the lab prints once it runs, after the URL: how to reach each part."""
    addresses = controller.addresses
    settings = controller.settings
    backends = ", ".join(f"{r.name} {r.address}" for r in controller.backends.values())
    traffic = (
        f"  traffic:  {settings.rate:g} req/s from {settings.clients} clients"
        f"{' (paused)' if settings.paused else ''}, control {addresses['traffic']}"
        if "traffic" in addresses
        else f"  traffic:  not running ({controller.traffic_error})"
    )
    return (
        f"  backends: {backends}\n"
        f"  balancer: {settings.mode}, {settings.algorithm}, on {addresses['listen']}"
        f" (admin {addresses['admin']})\n"
        f"{traffic}\n"
        f"  curl -i http://{addresses['listen']}/     # see X-Backend change on every request\n"
        f"  curl http://{addresses['admin']}/state    # every backend's numbers\n"
        f"  curl -N http://{addresses['admin']}/events   # every routing decision, live\n"
        f"Press Ctrl-C to stop."
    )
