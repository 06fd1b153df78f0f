"""The web lab's Flask app and its Socket.IO events (the pages: lab.web.pages). Same origin only.

Socket.IO contract (with the page, and later the lessons):

Browser -> server, event `command`, with an acknowledgement:

    {"action": "set_weight", "name": "b2", "weight": 3}  ->  {"ok": true}
                                                          or {"ok": false, "error": "..."}

    set_algorithm {algorithm}        set_hash_key {hash_key}     set_mode {mode: http|tcp}
    add_backend {}                   remove_backend {name}       kill_backend {name}
    restart_backend {name}           set_weight {name, weight}   set_error_rate {name, error_rate}
    set_latency {name, latency_ms, jitter_ms?}                   send {count: 1-1000}
    set_max_concurrency {name, max_concurrency: 0-1000}  (requests one backend works on
                                                         at once; the rest wait in line)
    set_traffic {rate?, clients?, keep_alive?, sni_mix?, resumption?} (at least one)
    pause {}  resume {}  reset {}
    set_tls {tls: off|terminate|passthrough, upstream?, sni_mix?}   (HTTPS: the balancer's
                           tls table with the lab's certificate, the backends' TLS listeners
                           and the traffic's https, together; lab.web.https)
    open_lesson {slug}   reset_lesson {slug}   (the lesson's whole lab: backends, knobs,
                                               balancer, traffic; counters zeroed)
    default_lab {}   (leave the lesson: the lab `lb-lab serve` started, counters zeroed)
    set_healthy {name, healthy}      (the backend's /health answers 503 when false; it
                                     still serves everything else)
    drain_backend {name, draining}   (no new requests; in-flight ones finish)
    configure {settings}   (a partial balancer config, as PUT /config: health, passive,
                           retries, sticky, timeouts, pools, rules, panic_threshold, ...;
                           backends and mode belong to the lab's own commands)
    record {seconds: 1-600}  (the lab service records its stream; every page then gets
                             `recording` messages, and the file at /recordings/NAME)

    Classroom (lab.web.room; the presenter's, refused to viewers like any command):
    set_position {section, panel, presenter_view, lesson?}   (where viewers who follow go)
    set_step {on}      (step mode for everyone: the traffic holds while it is on)
    step {}            (send one request; every page shows its decision)
    ask_class {slug, index}   (open a lesson's predict block to the class; traffic holds)
    reveal {}          (send its request: everyone sees the decision)   end_question {}
    compare {left?, right?, seed?}   (a second balancer with its own backends, alike, on
                           the same traffic; left/right: each side's balancer settings;
                           lab.web.compare)   end_compare {}   (stop the right side)
    During a comparison set_algorithm, set_hash_key, set_mode and configure take
    side: "left" (the default) or "right"; knob and backend commands act on both.

    A bad command (unknown action, missing, extra or mistyped field, value out of
    range, unknown backend, or not exactly one argument) changes nothing and is
    answered {"ok": false, "error"}. So is a command from another machine when
    the lab is served beyond loopback without --allow-remote-control
    (lab.web.access), and a command that failed unexpectedly (logged). Any
    other event, or one the server cannot read (lab.web.packets), is answered
    the same way, so no client is left waiting for an acknowledgement.

Server -> browser, event `state` (on connect, and to everyone after every change):

    {"mode": "http", "algorithm": "round-robin", "hash_key": "client-ip",
     "algorithms": ["round-robin", ...], "hash_keys": ["client-ip", "path", ...],
     "modes": ["http", "tcp"],
     "balancer": {"listen": "127.0.0.1:8080", "admin": "127.0.0.1:40123"},
     "backends": [{"name": "b1", "address": "127.0.0.1:9001", "weight": 1,
                   "process": "running" | "killed" | "exited",
                   "state": "up" | "warming" | "down" | "draining" | "drained" | "killed",
                   "reason": "", "draining": false, "backup": false,
                   "effective_weight": 1, "healthy": true,
                   "active": 0, "total": 12, "failures": 0, "ewma_ms": 1.3,
                   "latency_ms": 0.0, "jitter_ms": 0.0, "error_rate": 0.0}, ...],
     "max_backends": 12,
     "pools": [{"name": "default", "algorithm": "round-robin", "backends": ["b1", ...]}, ...],
     "rules": [<a rule, as the balancer's /state gives it>, ...],
     "traffic": {"available": true, "target": "http://127.0.0.1:8080/", "rate": 2.0,
                 "clients": 4, "keep_alive": true, "paused": false}
                | {"available": false, "error": "..."},
     "counters": <the same shape as in a batch>,
     "latency_history": [<latency point>, ...],      # the last minute, oldest first
     "problem": "",                                  # or why the lab is broken
     "lesson": {"slug": "round-robin", "title": "..."} | null,   # the lesson applied last
     "config_snippets": {"nginx": "upstream lab {...}", "haproxy": "backend lab ..."},
     "compare": null | {"seed": 13, "sides": ["left", "right"],   # a comparison (this state
                        "right": <the right side's state, without "compare">}}  # is its left)

    `state` "killed" = SIGKILLed by kill_backend; "down" = the process exited by
    itself, or the balancer's health checks took it out (`reason` says which check);
    "warming" = back in service and ramping up (slow start). `healthy` is the
    balancer's own view of the backend.

Server -> browser, event `batch` (to everyone, about every 50 ms while anything happens):

    {"events": [<balancer event>, ...],   # as on the balancer's GET /events (DESIGN.md):
                                          # route, done, error, config, health,
                                          # check, drain, queue, dropped
     "omitted": 0,                        # requests left out of "events" (sampling)
     "side": "left" | "right",            # only during a comparison: whose balancer
     "latency": [<latency point>, ...],   # seconds that closed since the last batch
     "latency_now": <latency point> | null,  # the second still running, so far
     "counters": {"total": 12, "active": 0, "failures": 0,   # sums over the backends
                  "errors": {"503": 1, "retry": 2},           # the balancer's, by kind
                  "queued": {"default": 0},    # waiting in each pool's max_conns queue
                  "backends": {"b1": {"active": 0, "total": 4, "failures": 0,
                                      "ewma_ms": 1.3, "healthy": true,
                                      "state": "up", "reason": ""}, ...},
                  "traffic": {"sent": 12, "completed": 12, "failed": 0, "in_flight": 0,
                              "status": {"2xx": 12, "4xx": 0, "5xx": 0},
                              "latency_ms": {"p50": 1.2, "p95": 2.0}} | null,
                  "read": 41}}   # counters read later have a larger number: the page
                                 # never shows older counters over newer ones

    <latency point> = {"t": 1764220000, "n": 25, "p50": 1.2, "p95": 3.4}: the
    response times the balancer reported in that wall-clock second (p50/p95 are
    null when n is 0).

Counters are exact (read from the balancer's and the generator's APIs when the
batch is sent); events are sampled when traffic is heavy, never counters.

Server -> browser, event `you` (on connect, to that page only): its role as the server
decides it (presenter, viewer, or user: the one user of a lab that is no classroom),
and for the presenter only the viewers' URL and its QR code (lab.vocabulary.messages).

Server -> browser, event `classroom` (to everyone, when it changed; also `state`'s
"classroom"): the presenter's position, the viewer count over every front, step mode,
the traffic's holds and the class's question with its tally (never who voted what).

Browser -> server, event `answer` {round, option, viewer}: a viewer's answer to the
class's question, counted once per viewer id (a random id the page keeps); anyone may
answer, at most ANSWER_RATE a second, and one connection answers as one viewer id.

Browser -> server, event `check` {slug, index}: a lesson's `expect` worked out now
with the CI runner's measurements (lab.web.lesson_checks documents the answer).

HTTP: the page, a lesson's page and the course's JSON API (lab.web.pages).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from flask import Flask, current_app, request
from flask_socketio import SocketIO, emit
from werkzeug.middleware.proxy_fix import ProxyFix

from lab.lessons.catalog import Catalog
from lab.web import lab_ca, pages, recordings
from lab.web.access import Access
from lab.web.audience import Audience
from lab.web.bucket import Buckets
from lab.web.classroom import qr_svg
from lab.web.packets import UNREADABLE, LenientPacket
from lab.web.room import VIEWER_ID, VIEWER_RULE

socketio = SocketIO()
log = logging.getLogger(__name__)
ANSWER_RATE, ANSWER_BURST = 5.0, 10.0  # a viewer's answers a second: a hand changing its mind
ANSWER_FIELDS = {"round", "option", "viewer"}


def asset_root() -> Path:
    """Where templates/ and static/ live: the repository, or the installed share/ folder."""
    repo = Path(__file__).resolve().parents[2]
    if (repo / "templates").is_dir():
        return repo
    return Path(sys.prefix) / "share" / "lb-lab"


def same_origin(origin: str | None, environ: dict) -> bool:
    """Allow a browser's Socket.IO connection only from the page this server served."""
    host = environ.get("HTTP_HOST", "")
    scheme = environ.get("wsgi.url_scheme", "http")
    return origin == f"{scheme}://{host}"


def own_names_only(wsgi_app, access: Access):
    """Answer only requests addressed to this lab by one of its own names (lab.web.access).

    A web page elsewhere could point a name it owns at this machine (DNS
    rebinding) and then count as "same origin"; such a request carries that
    name in its Host header.
    """
    refused = (
        b"this lab answers only to the names and addresses it serves on\n"
        if access.beyond
        else b"this lab answers only on 127.0.0.1 or localhost\n"
    )

    def guarded(environ, start_response):
        if not access.host_allowed(environ.get("HTTP_HOST", "")):
            start_response("421 Misdirected Request", [("Content-Type", "text/plain")])
            return [refused]
        return wsgi_app(environ, start_response)

    return guarded


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the web lab; config may carry the lab (CONTROLLER) and an Access.

    The lab is a ServiceLink to a lab service (lb-lab serve, lb-lab web), or a
    started LabController in this process (tests): the app calls `handle`,
    `describe` and `attach` on either.
    """
    root = asset_root()
    app = Flask(
        __name__,
        template_folder=str(root / "templates"),
        static_folder=str(root / "static"),
    )
    app.config.from_mapping(
        ASYNC_MODE="eventlet",
        CONTROLLER=None,
        ACCESS=Access.loopback(),
        BUCKETS=Buckets(),
        ANSWERS=Buckets(rate=ANSWER_RATE, capacity=ANSWER_BURST),  # a viewer's answers
        AUDIENCE=Audience(),
        VIEWER_URL="",  # the viewers' URL for the presenter's QR code ("": this page's own)
    )
    if config:
        app.config.from_mapping(config)
    queue = app.config.get("MESSAGE_QUEUE")  # several web processes (lab.web.scaleout)
    socketio.init_app(
        app,
        async_mode=app.config["ASYNC_MODE"],
        cors_allowed_origins=same_origin,
        serializer=LenientPacket,  # a malformed event is answered too (lab.web.packets)
        **({"message_queue": queue} if queue else {}),
    )
    inner = app.wsgi_app
    if app.config.get("BEHIND_BALANCER"):
        # Only the lab's own balancer reaches this process (it binds loopback), and it
        # appends the browser's address to X-Forwarded-For: that is who is asking.
        inner = ProxyFix(inner, x_for=1)
    app.wsgi_app = own_names_only(inner, app.config["ACCESS"])  # Socket.IO's too
    app.add_url_rule("/", "index", pages.index)
    app.add_url_rule("/lessons/<slug>", "lesson_page", pages.lesson_page)
    app.add_url_rule("/api/lessons", "lesson_list", pages.lesson_list)
    app.add_url_rule("/api/lessons/<slug>", "lesson_detail", pages.lesson_detail)
    app.register_blueprint(recordings.blueprint)  # the Record button's files
    app.register_blueprint(lab_ca.blueprint)  # the lab CA's certificate (HTTPS)
    controller = app.config["CONTROLLER"]
    if app.config.get("LESSONS") is None:
        app.config["LESSONS"] = controller.lessons if controller is not None else Catalog()
    if controller is not None:
        controller.attach(socketio.emit, socketio.start_background_task, socketio.sleep)
        report_viewers(app)
    return app


def report_viewers(app: Flask) -> None:
    """Keep telling the lab how many viewers this front has (lab.web.audience)."""
    audience = app.config["AUDIENCE"]
    lab = lambda: app.config["CONTROLLER"]  # noqa: E731 (set later by `lb-lab serve`)
    socketio.start_background_task(audience.report_forever, lab, socketio.sleep)


def _controller():
    return current_app.config["CONTROLLER"]


@socketio.on("connect")
def on_connect(auth: Any = None) -> None:
    """Tell a new browser who it is, and give it the whole picture at once.

    Who it is comes from the server's own rules (the presenter cookie, the
    peer's address), never from `auth`: a browser cannot claim a role.
    """
    access = current_app.config["ACCESS"]
    viewer = access.refusal(request.environ) is not None
    current_app.config["AUDIENCE"].joined(request.sid, viewer)  # type: ignore[attr-defined]
    state = _controller().describe() if _controller() is not None else None
    if state is not None:
        emit("state", state, ignore_queue=True)  # for this browser only: not through a queue
    emit("you", _who(access, viewer), ignore_queue=True)


def _who(access: Access, viewer: bool) -> dict:
    """The `you` message: this page's role; the presenter's also the viewers' URL and QR code."""
    if viewer:
        return {"role": "viewer", "classroom": bool(access.token)}
    if not access.token:
        return {"role": "user", "classroom": False}
    url = current_app.config["VIEWER_URL"] or request.host_url
    return {"role": "presenter", "classroom": True, "viewer_url": url, "qr_svg": qr_svg(url)}


@socketio.on("command")
def on_command(*args: Any) -> dict:
    """Validate, run and acknowledge one command."""
    if len(args) != 1:  # a raw client can send any number; each still gets its answer
        return {"ok": False, "error": f"a command is exactly one object, got {len(args)} values"}
    access = current_app.config["ACCESS"]
    # The rate first: a viewer's flood of refused commands is bounded too.
    buckets = current_app.config["BUCKETS"]
    if access.limits_commands and not buckets.take(request.sid):  # type: ignore[attr-defined]
        return {"ok": False, "error": buckets.refusal()}
    refusal = access.refusal(request.environ)
    if refusal is not None:
        return {"ok": False, "error": refusal}
    if _controller() is None:
        return {"ok": False, "error": "this lab has no controller"}
    return _controller().handle(args[0])


@socketio.on("disconnect")
def on_disconnect(*_: Any) -> None:
    sid = request.sid  # type: ignore[attr-defined]
    current_app.config["BUCKETS"].forget(sid)
    current_app.config["ANSWERS"].forget(sid)
    current_app.config["AUDIENCE"].left(sid)


@socketio.on("answer")
def on_answer(*args: Any) -> dict:
    """A viewer's answer to the class's question: anyone may answer, at a bounded rate."""
    data = args[0] if len(args) == 1 else None
    if not isinstance(data, dict) or set(data) != ANSWER_FIELDS:
        return {"ok": False, "error": 'an answer is {"round": N, "option": "b2", "viewer": ID}'}
    sid = request.sid  # type: ignore[attr-defined]
    if not current_app.config["ANSWERS"].take(sid):
        return {"ok": False, "error": "too many answers from this page; try again in a moment"}
    viewer = data["viewer"]
    if not isinstance(viewer, str) or not VIEWER_ID.fullmatch(viewer):
        return {"ok": False, "error": VIEWER_RULE}
    if not current_app.config["AUDIENCE"].may_vote_as(sid, viewer):
        return {"ok": False, "error": "this page already answers as another viewer"}
    if _controller() is None:
        return {"ok": False, "error": "the lab is not running yet"}
    return _controller().classroom({"kind": "answer", **data})


@socketio.on("check")
def on_check(data: Any = None) -> dict:
    """Work out a lesson's `expect` now, with the CI runner's measurements (read-only)."""
    if _controller() is None:
        return {"ok": False, "error": "the lab is not running yet"}
    return _controller().check(data)


@socketio.on(UNREADABLE)
def on_unreadable(*args: Any) -> dict:
    """Answer an event python-socketio could not read (see lab.web.packets)."""
    why = args[0] if args and isinstance(args[0], str) else "the message could not be read"
    return {"ok": False, "error": why}


@socketio.on("*")
def on_other(event: Any, *_: Any) -> dict:
    """Answer an event the lab does not know, rather than leave its sender waiting."""
    return {
        "ok": False,
        "error": f"unknown event {str(event)[:40]!r}: the lab takes command, check and answer",
    }


@socketio.on_error_default
def on_error(exc: Exception) -> dict:
    """Answer a handler's unexpected failure as a command's error, and log it."""
    log.error("a Socket.IO handler failed", exc_info=exc)
    return {"ok": False, "error": "the lab failed to handle that (its log says why)"}
