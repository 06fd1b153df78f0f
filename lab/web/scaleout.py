"""`lb-lab serve --web-workers N --message-queue URL`: many viewers, one lab, its own balancer.

One web process serves a room; more go through Flask-SocketIO's message queue
(its "Using Multiple Workers" and "Emitting from an External Process"):

    browsers --> the lab's own balancer, a second `lb-lab balancer` on --host:--port
                 (Layer 7, round robin, sticky cookie LB_LAB_WEB, health checks)
             --> web processes w1..wN (`lb-lab web --worker`, loopback, any free port)
    lab service --stream--> this process, a write-only emitter --> Redis
                --> every web process --> its own browsers

Exactly one emitter puts the lab's stream into the queue, so each batch reaches
every browser once, and in the same order on every web process. A command from
any browser goes from its web process to the one lab service; so a web process
holds nothing the lab needs, and when one dies its browsers reconnect through
the balancer (its health checks take the dead one out) to another.

Socket.IO's long-polling transport sends each browser's requests one by one,
and they must all reach the process that knows its session: the sticky cookie
sees to that, as `ip_hash` or `sticky` would in nginx.
"""

from __future__ import annotations

import argparse
import http.client
from functools import partial
from urllib.parse import urlsplit

import eventlet

from lab.address import join_address, split_address
from lab.supervisor import Child, StartError, Supervisor
from lab.web.api import ApiError, JsonApi
from lab.web.link import ServiceLink
from lab.web.ports import port_or_any
from lab.web.server import (
    STOP_POLL_S,
    TOKEN_ENV,
    Shutdown,
    last_words,
    page_access,
    page_line,
    start_service,
    welcome,
)

WORKER_START_S = 60.0  # Flask and Socket.IO import in each, side by side on a busy machine
QUEUE_TIMEOUT_S = 3.0
COOKIE = "LB_LAB_WEB"
# The front balancer's settings (PUT /config): sticky sessions for Socket.IO's polling.
# A killed web process refuses connections, and passive health takes it out at the first
# refusal (its request is retried on another); the active checks bring it back, and are
# lenient (two misses, a second each), as a busy machine may answer a probe late.
FRONT_CONFIG = {
    "sticky": {"mode": "cookie", "cookie": COOKIE},
    "health": {"enabled": True, "type": "tcp", "interval_ms": 1000, "timeout_ms": 1000,
               "rise": 2, "fall": 2},
    # A long poll waits up to Engine.IO's ping interval (25 s) for something to send.
    "timeouts": {"backend_response_ms": 60_000, "idle_ms": 120_000},
}  # fmt: skip


def queue_problem(url: str) -> str | None:
    """Why the message queue cannot be used (no client library, or no server), or None."""
    try:
        import redis
    except ImportError:
        return "--message-queue needs the redis package: pip install -e '.[scale]'"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=QUEUE_TIMEOUT_S)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        return f"cannot reach the message queue at {shown(url)}: {exc}"
    return None


def shown(url: str) -> str:
    """The queue's URL without a password, for printing."""
    parts = urlsplit(url)
    where = parts.hostname or ""
    if parts.port:
        where = f"{join_address(where, parts.port)}"
    return f"{parts.scheme}://{where}{parts.path}"


def worker_args(options: argparse.Namespace, service_url: str, name: str) -> list[str]:
    args = ["web", "--lab", service_url, "--worker", name, "--host", options.host]
    args += ["--message-queue", options.message_queue]
    if options.classroom:
        args.append("--classroom")
    if options.allow_remote_control:
        args.append("--allow-remote-control")
    return args


def front_args(listen: str, workers: list[Child]) -> list[str]:
    args = ["balancer", "--mode", "http", "--listen", listen, "--admin", "127.0.0.1:0"]
    for child in workers:
        args += ["--backend", f"{child.name.removeprefix('web-')}={child.addresses['listen']}"]
    return args


def start_workers(supervisor: Supervisor, options, service_url: str, env: dict) -> list[Child]:
    """Start the web processes side by side; raise StartError if one cannot start."""
    echo = partial(print, end="", flush=True)
    names = [f"w{number}" for number in range(1, options.web_workers + 1)]
    starting = [
        eventlet.spawn(
            supervisor.start,
            f"web-{name}",
            worker_args(options, service_url, name),
            WORKER_START_S,
            echo,
            env,
        )
        for name in names
    ]
    return [green.wait() for green in starting]


def start_front(supervisor: Supervisor, options, workers: list[Child]) -> Child:
    """The lab's own balancer in front of the web processes, on the page's address."""
    from lab.serve import DEFAULT_PORT

    port = options.port if options.port is not None else port_or_any(options.host, DEFAULT_PORT)
    front = supervisor.start("front", front_args(join_address(options.host, port), workers))
    api = JsonApi(front.addresses["admin"], "the lab's own balancer", timeout=5.0)
    try:
        api.call("PUT", "/config", FRONT_CONFIG)
    finally:
        api.close()
    return front


def describe_front(front: Child, workers: list[Child], queue: str) -> str:
    """What the lab prints about its own balancer: the learner can watch it work."""
    admin = front.addresses["admin"]
    listed = ", ".join(
        f"{c.name.removeprefix('web-')} {c.addresses['listen']} (pid {c.pid})" for c in workers
    )
    return (
        f"  web:      {len(workers)} processes behind the lab's own balancer (Layer 7, "
        f"round robin, sticky cookie {COOKIE}, health checks): {listed}\n"
        f"  queue:    {shown(queue)} carries the lab's stream to every web process\n"
        f"  curl http://{admin}/state    # the lab balancing its own viewers\n"
        f"  curl -N http://{admin}/events   # each page request, and where it went"
    )


def serve_scaled(options: argparse.Namespace) -> int:
    """Start the service, N web processes and the balancer in front; stop them all at the end."""
    from lab.service.options import check_algorithm

    check_algorithm(options)
    problem = queue_problem(options.message_queue)
    if problem is not None:
        print(f"lb-lab: {problem}", flush=True)
        return 1
    shutdown = Shutdown().on_signals()
    supervisor = Supervisor()
    link = None
    try:
        try:
            service = start_service(supervisor, options).wait()
        except StartError as exc:
            print(f"lb-lab: {last_words(supervisor.children.get('service'), exc)}")
            return 1
        access = page_access(options)
        env = {TOKEN_ENV: access.token} if access.token else {}
        link = ServiceLink(service.addresses["api"])
        try:
            workers = start_workers(supervisor, options, link.url, env)
            front = start_front(supervisor, options, workers)
        except (StartError, ApiError) as exc:
            print(f"lb-lab: could not start the web processes and their balancer: {exc}")
            return 1
        relay_stream(link, options.message_queue)
        print(page_line(split_address(front.addresses["listen"]), access), flush=True)
        print(describe_front(front, workers, options.message_queue), flush=True)
        try:
            print(welcome(link), flush=True)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # it stopped at once
            print(f"  (the lab service does not say how to reach its parts: {exc})", flush=True)
        return watch(shutdown, service, front, workers)
    finally:
        if link is not None:
            link.close()
        stop_fronts_first(supervisor)


def stop_fronts_first(supervisor: Supervisor) -> None:
    """Stop the balancer and the web processes, then the lab: none sees its lab vanish."""
    fronts = [name for name in supervisor.children if name != "service"]
    for name in fronts:
        child = supervisor.children[name]
        if child.alive():
            child.process.terminate()  # all at once; each is then waited for
    for name in fronts:
        supervisor.stop(name)
    supervisor.stop_all()


def relay_stream(link: ServiceLink, queue: str) -> None:
    """Put the lab's stream into the queue: its one emitter (Flask-SocketIO's "Emitting
    from an External Process")."""
    from flask_socketio import SocketIO

    emitter = SocketIO(message_queue=queue)  # no app: write-only
    link.attach(emitter.emit, emitter.start_background_task, emitter.sleep)


def watch(shutdown: Shutdown, service: Child, front: Child, workers: list[Child]) -> int:
    """Run until Ctrl-C or SIGTERM; say when a web process goes (its viewers move on)."""
    gone: set[str] = set()
    while not shutdown.requested and service.alive() and front.alive():
        eventlet.sleep(STOP_POLL_S)
        for child in workers:
            if not child.alive() and child.name not in gone:
                gone.add(child.name)
                print(
                    f"lb-lab: web process {child.name.removeprefix('web-')} (pid {child.pid}) "
                    "exited; the balancer's health checks take it out, and its viewers "
                    "reconnect to another",
                    flush=True,
                )
    if shutdown.requested:
        return 0
    who = "the lab service" if not service.alive() else "the lab's own balancer"
    print(f"lb-lab: {who} exited unexpectedly", flush=True)
    return 1
