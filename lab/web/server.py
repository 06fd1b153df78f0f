"""Run a web front under eventlet's WSGI server until Ctrl-C, SIGTERM or the lab's end.

Imported only by `lb-lab serve` and `lb-lab web`, after `eventlet.monkey_patch()`.

`lb-lab serve` starts the lab service (lab.service) as its child and shows it;
`lb-lab web --lab URL` shows a lab service that is already running. Either way
the front only serves the page, relays commands and broadcasts the service's
stream (lab.web.link).

Start-up is a race against the clock (the page should show healthy backends
within 3 s of launching `lb-lab`), so the work overlaps: the service is
launched first, Flask is imported while it starts the lab, and the page is
served, and its URL printed, while the lab finishes starting, so that a
browser opened at once has loaded it by the time the lab's first `state`
arrives.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
from functools import partial

import eventlet
import eventlet.wsgi

from lab.service.options import check_algorithm, passed_on
from lab.supervisor import Child, StartError, Supervisor
from lab.web.access import Access
from lab.web.classroom import viewer_url
from lab.web.https import curl_line
from lab.web.link import ServiceLink

DRAIN_OUTPUT_S = 2.0
STOP_POLL_S = 0.2
TOKEN_ENV = "LB_LAB_PRESENTER_TOKEN"  # out of argv, where `ps` would show it
SERVICE_START_S = 60.0  # the service reports ready once every child of the lab has


class Shutdown:
    """Set by a signal handler; read by the main loop (a handler must not switch greenlets)."""

    def __init__(self) -> None:
        self.requested = False

    def request(self, *_: object) -> None:
        self.requested = True

    def on_signals(self) -> Shutdown:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.request)
        return self


def listen(host: str, port: int | None, default: int) -> eventlet.greenio.GreenSocket:
    """The page's listening socket; the default port falls back to any free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return eventlet.listen((host, default if port is None else port), family)
    except OSError:
        if port is not None:
            raise
        return eventlet.listen((host, 0), family)


def open_page(options: argparse.Namespace):
    """The page's socket, or None after saying why it cannot be had."""
    from lab.serve import DEFAULT_PORT

    try:
        return listen(options.host, options.port, DEFAULT_PORT)
    except OSError as exc:
        print(f"lb-lab: cannot serve the page on {options.host}:{options.port}: {exc.strerror}")
        return None


def serve(options: argparse.Namespace) -> int:
    """`lb-lab serve`: start a lab service, show it, and stop it when we stop."""
    check_algorithm(options)
    sock = open_page(options)
    if sock is None:
        return 1
    shutdown = Shutdown().on_signals()
    supervisor = Supervisor()
    starting = start_service(supervisor, options)
    app, socketio = serve_page(sock, page_access(options))
    link = None
    try:
        try:
            service = starting.wait()
        except StartError as exc:
            print(f"lb-lab: {last_words(supervisor.children.get('service'), exc)}")
            return 1
        link = ServiceLink(service.addresses["api"])
        go_live(app, socketio, link)
        try:
            print(welcome(link), flush=True)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # it stopped at once
            print(f"  (the lab service does not say how to reach its parts: {exc})", flush=True)
        while not shutdown.requested and service.alive():
            socketio.sleep(STOP_POLL_S)
        if not service.alive():
            service.drained.wait(DRAIN_OUTPUT_S)  # its last words may still be in the pipe
            said = [line for line in service.output if line.strip()]
            if not (said and said[-1].startswith("lb-lab: ")):  # it said why (echoed)
                print("lb-lab: the lab service exited unexpectedly", flush=True)
            return 1
        return 0
    finally:
        if link is not None:
            link.close()
        supervisor.stop_all()
        sock.close()


def serve_front(options: argparse.Namespace) -> int:
    """`lb-lab web --lab URL`: one more page for a lab service that already runs."""
    from lab.web.link import service_address

    try:
        address = service_address(options.lab)
    except ValueError as exc:
        options.parser.error(f"--lab: {exc}")
    worker = getattr(options, "worker", None)
    if worker is not None:  # one of `serve --web-workers`: loopback, behind the lab's balancer
        return serve_worker(options, worker, address)
    sock = open_page(options)
    if sock is None:
        return 1
    shutdown = Shutdown().on_signals()
    app, socketio = serve_page(sock, page_access(options))
    link = ServiceLink(address)
    go_live(app, socketio, link)
    try:
        link.processes()
        print(f"  showing the lab at {link.url}", flush=True)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # It may start later: the page follows it once it does.
        print(f"  waiting for the lab at {link.url} (it does not answer: {exc})", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    try:
        while not shutdown.requested:
            socketio.sleep(STOP_POLL_S)
        return 0
    finally:
        link.close()
        sock.close()


def serve_worker(options: argparse.Namespace, name: str, address: str) -> int:
    """One web process of several (lab.web.scaleout): the lab's stream comes from the queue.

    It binds loopback only, on any free port; the lab's own balancer brings it the
    browsers of the address the lab serves on (`--host`), whose Host header and
    page-access rules it keeps. It follows the service's stream only to greet a new
    browser with the latest state: one relay, not this process, puts the stream
    into the queue, and every process delivers it from there to its own browsers.
    """
    from lab.lifecycle import die_with_parent, lab_parent, parent_gone, report_ready

    parent = lab_parent()
    if parent is not None:
        die_with_parent()
    sock = listen("127.0.0.1", 0, 0)
    shutdown = Shutdown().on_signals()
    from lab.web.app import create_app, socketio

    config = {"CONTROLLER": None, "ASYNC_MODE": "eventlet", "ACCESS": page_access(options)}
    config.update(MESSAGE_QUEUE=options.message_queue, BEHIND_BALANCER=True)
    app = create_app(config)
    link = ServiceLink(address)
    app.config["CONTROLLER"] = link
    link.attach(_no_publishing, socketio.start_background_task, socketio.sleep)
    socketio.start_background_task(eventlet.wsgi.server, sock, app, log_output=False)
    host, port = sock.getsockname()[:2]
    report_ready(f"web {name}: http://{host}:{port}/ (pid {os.getpid()})", listen=f"{host}:{port}")
    try:
        while not shutdown.requested and not parent_gone(parent):
            socketio.sleep(STOP_POLL_S)
        return 0
    finally:
        link.close()
        sock.close()


def _no_publishing(name: str, data: object) -> None:
    """A worker publishes nothing itself: the stream reaches its browsers through the queue."""


def start_service(supervisor: Supervisor, options: argparse.Namespace):
    """Launch the lab service in a green thread; return once its process exists."""
    args = ["service", *passed_on(options)]
    # What the service prints once it runs (a warning, why it stops) shows here, as before.
    echo = partial(print, end="", flush=True)
    starting = eventlet.spawn(supervisor.start, "service", args, SERVICE_START_S, echo)
    while "service" not in supervisor.children and not starting.dead:
        eventlet.sleep(0)  # let it fork before Flask's import takes the CPU
    return starting


def last_words(service: Child | None, exc: StartError) -> str:
    """Why the service could not start, in its own words ("could not start the lab: ...")."""
    lines = [line.strip() for line in (service.output if service else []) if line.strip()]
    for said in reversed(lines):
        if said.startswith("error: "):
            return said[len("error: ") :]
    return f"could not start the lab: {exc}"


def page_access(options: argparse.Namespace) -> Access:
    """Who may reach and command the page: by bind, and by presenter token in a classroom."""
    access = Access.for_bind(options.host, options.allow_remote_control)
    if getattr(options, "classroom", False):
        from lab.web.presenter import new_token

        # The web processes of one lab share its token (lab.web.scaleout passes it on).
        shared = os.environ.get(TOKEN_ENV) if getattr(options, "worker", None) else None
        access = access.classroom(shared or new_token())
    return access


def serve_page(sock: eventlet.greenio.GreenSocket, access: Access) -> tuple:
    """Serve the page (with no lab yet) and print its URL; return the app and socketio."""
    from lab.web.app import create_app, socketio  # Flask: about 0.3 s, while the lab starts

    app = create_app({"CONTROLLER": None, "ASYNC_MODE": "eventlet", "ACCESS": access})
    host, port = sock.getsockname()[:2]
    app.config["VIEWER_URL"] = viewer_url(host, port, access.own)
    socketio.start_background_task(eventlet.wsgi.server, sock, app, log_output=False)
    print(page_line(sock.getsockname(), access), flush=True)
    return app, socketio


def go_live(app, socketio, link: ServiceLink) -> None:
    """Hand the lab to the page: commands go to it, and its stream to every browser.

    The stream starts with a full `state`, so browsers that came while the lab
    started get one then.
    """
    from lab.web.app import report_viewers

    app.config["CONTROLLER"] = link  # what create_app does with one it is given
    link.attach(socketio.emit, socketio.start_background_task, socketio.sleep)
    report_viewers(app)


def page_line(page: tuple, access: Access) -> str:
    """What the lab prints first: the page's URL (and who else can reach it, if anyone)."""
    host, port = page[0], page[1]
    shown = f"[{host}]" if ":" in host else host
    notice = access.notice()
    if access.token:
        from lab.web.classroom import announce

        url = viewer_url(host, port, access.own) or f"http://{shown}:{port}/"
        return announce(url, access.token)
    return f"\nLoad Balancing Lab: http://{shown}:{port}/" + (f"\n  {notice}" if notice else "")


def welcome(link: ServiceLink) -> str:
    """What the lab prints once it runs, after the URL: how to reach each part."""
    lab = link.processes()
    addresses, settings = lab["addresses"], lab["settings"]
    backends = ", ".join(f"{b['name']} {b['address']}" for b in lab["backends"])
    traffic = (
        f"  traffic:  {settings['rate']:g} req/s from {settings['clients']} clients"
        f"{' (paused)' if settings['paused'] else ''}, control {addresses['traffic']}"
        if "traffic" in addresses
        else f"  traffic:  not running ({lab['traffic_error']})"
    )
    return (
        f"  backends: {backends}\n"
        f"  balancer: {settings['mode']}, {settings['algorithm']}, on {addresses['listen']}"
        f" (admin {addresses['admin']})\n"
        f"{traffic}\n"
        f"  service:  {link.url}   # lb-lab web --lab {link.url} : one more page\n"
        f"  curl -i http://{addresses['listen']}/     # see X-Backend change on every request\n"
        f"  curl http://{addresses['admin']}/state    # every backend's numbers\n"
        f"  curl -N http://{addresses['admin']}/events   # every routing decision, live\n"
        f"{curl_line(lab)}"
        f"Press Ctrl-C to stop."
    )
