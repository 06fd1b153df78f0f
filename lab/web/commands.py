"""The command table: every action a browser (or a lesson) may send, checked whole first.

A command is a JSON object: `{"action": "set_weight", "name": "b2", "weight": 3}`.
Each action is declared once in COMMANDS: its fields (their kinds and limits),
the parts of the lab it needs to itself while it runs (lab.web.turns), its
handler (lab.web.actions) and a line of help. `parse_command` returns a clean
`Command` or raises `CommandError` with one line a learner can read; the lab
then runs `COMMANDS[action].run(lab, **fields)`. Whether a named backend exists
is the handler's business: only the lab knows its current backends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.backend.knobs import MAX_MS
from lab.balancer.algorithms import ALGORITHM_NAMES
from lab.balancer.config import MAX_WEIGHT, MODES
from lab.recording import service as recording
from lab.recording.record import MAX_SECONDS as MAX_RECORD_S
from lab.traffic.settings import MAX_CLIENTS, MAX_HEAVY_MS, MAX_RATE, MAX_SEND, MAX_SESSION
from lab.web import actions, class_actions, compare, https, lesson_setup
from lab.web.fields import CommandError, Field

__all__ = ["COMMANDS", "Action", "Command", "CommandError", "Field", "parse_command"]

NAME = Field("text")
MAX_CONCURRENCY = 1000  # a backend working on more requests at once than this is no lesson
MS = Field("number", low=0, high=MAX_MS)
MAX_SECTION = 1000  # a lesson's sections and blocks, counted from 0
# The parts of the lab an action needs to itself while it runs (see lab.web.turns).
BACKENDS, BALANCER, TRAFFIC = ("backends",), ("balancer",), ("traffic",)
ALL = BACKENDS + BALANCER + TRAFFIC
# Which side of a comparison a balancer command is for (the left, the lab itself, if not said).
SIDE = Field("text", False, choices=compare.SIDES)
SETTINGS = Field("object", False)


@dataclass(frozen=True)
class Action:
    """One action of the table: what it does, what it needs, and the fields it takes."""

    help: str
    needs: tuple[str, ...]
    run: Callable[..., None]  # run(lab, **fields)
    fields: dict[str, Field] = field(default_factory=dict)
    # False: it changes only the classroom (lab.web.room), which sends its own message;
    # no full `state` for a presenter's scroll.
    announces: bool = True
    # During a comparison it runs on both sides (lab.web.compare): the backends stay alike.
    both_sides: bool = False


# The contract with the page and the lessons (see DESIGN.md); `lb-lab schema` prints it.
COMMANDS: dict[str, Action] = {
    "set_algorithm": Action(
        "choose how the balancer picks a backend", BALANCER, actions.set_algorithm,
        {"algorithm": Field("text", choices=ALGORITHM_NAMES), "side": SIDE},
    ),
    "set_hash_key": Action(
        "choose what the hashing algorithms hash (client-ip, path, header:NAME, ...)",
        BALANCER, actions.set_hash_key, {"hash_key": Field("text"), "side": SIDE},
    ),
    "set_mode": Action(  # then the traffic reconnects, so the change shows at once
        "switch the balancer between Layer 7 (http) and Layer 4 (tcp connections or udp "
        "flows); with HTTPS on, it stays on: terminated at Layer 7, passed through at Layer 4",
        ALL,  # with HTTPS on, the backends' addresses change too (lab.web.https)
        https.set_mode, {"mode": Field("text", choices=MODES), "side": SIDE},
    ),
    "set_tls": Action(  # balancer, backends' TLS listeners and traffic, together (lab.web.https)
        "HTTPS: terminate it at the balancer (Layer 7; upstream: re-encrypt to the backends), "
        "pass it through by SNI (Layer 4), or plain (off); the traffic speaks HTTPS with an SNI "
        "mix such as shop.lab.test=3,api.lab.test=1", ALL,
        https.set_tls,
        {"tls": Field("text", choices=https.TLS_MODES), "upstream": Field("bool", False),
         "sni_mix": Field("text", False)},
    ),
    "add_backend": Action(
        "start one more toy backend and add it to the balancer", BACKENDS + BALANCER,
        actions.add_backend,
        both_sides=True,
    ),
    "remove_backend": Action(
        "take a backend out of the balancer and stop its process", BACKENDS + BALANCER,
        actions.remove_backend, {"name": NAME},
        both_sides=True,
    ),
    "kill_backend": Action(
        "SIGKILL a backend's process, as a crash would", BACKENDS, actions.kill_backend,
        {"name": NAME},
        both_sides=True,
    ),
    "restart_backend": Action(  # the balancer hears if the port changed
        "start a backend's process afresh, on its port, with its knobs", BACKENDS + BALANCER,
        actions.restart_backend, {"name": NAME},
        both_sides=True,
    ),
    "set_weight": Action(
        "give a backend a larger or smaller share", BALANCER, actions.set_weight,
        {"name": NAME, "weight": Field("int", low=1, high=MAX_WEIGHT)},
        both_sides=True,
    ),
    "set_latency": Action(
        "make a backend answer slower (jitter: +/- that much at random)", BACKENDS,
        actions.set_latency,
        {"name": NAME, "latency_ms": MS, "jitter_ms": Field("number", False, 0, MAX_MS)},
        both_sides=True,
    ),
    "set_error_rate": Action(
        "make a backend answer 500 to this fraction of requests", BACKENDS,
        actions.set_error_rate, {"name": NAME, "error_rate": Field("number", low=0, high=1)},
        both_sides=True,
    ),
    "set_healthy": Action(  # /health answers 503 while the backend still serves everything else
        "make a backend's /health fail (or pass) while it still serves requests", BACKENDS,
        actions.set_healthy, {"name": NAME, "healthy": Field("bool")},
        both_sides=True,
    ),
    "drain_backend": Action(
        "stop sending a backend new requests; the ones in flight finish", BALANCER,
        actions.drain_backend, {"name": NAME, "draining": Field("bool")},
        both_sides=True,
    ),
    # The balancer validates these whole, as PUT /config does.
    "configure": Action(
        "change any balancer settings the page has no control for (health, sticky, rules, ...)",
        BALANCER, actions.configure, {"settings": Field("object"), "side": SIDE},
    ),
    "set_max_concurrency": Action(
        "let a backend work on at most this many requests at once; the rest wait in line",
        BACKENDS, actions.set_max_concurrency,
        {"name": NAME, "max_concurrency": Field("int", low=0, high=MAX_CONCURRENCY)},
        both_sides=True,
    ),
    "set_traffic": Action(
        "change the traffic: requests per second, clients, keep-alive, (udp) datagrams per "
        "source port, 0 for one port throughout, (https) the SNI mix and TLS session "
        "resumption, or the share of heavy requests (/report) and how much longer they take "
        "(at least one)", TRAFFIC,
        actions.set_traffic,
        {
            "rate": Field("number", False, 0, MAX_RATE),
            "clients": Field("int", False, 1, MAX_CLIENTS),
            "keep_alive": Field("bool", False),
            "udp_session": Field("int", False, 0, MAX_SESSION),
            "sni_mix": Field("text", False),
            "resumption": Field("bool", False),
            "heavy_share": Field("number", False, 0, 1),
            "heavy_ms": Field("number", False, 0, MAX_HEAVY_MS),
        },
    ),
    "send": Action(
        "send this many requests now", TRAFFIC, actions.send,
        {"count": Field("int", low=1, high=MAX_SEND)},
    ),
    "pause": Action("pause the steady traffic", TRAFFIC, actions.pause),
    "resume": Action("resume the steady traffic", TRAFFIC, actions.resume),
    "reset": Action(
        "zero every counter and the latency chart", ALL, actions.reset, both_sides=True
    ),
    "compare": Action(
        "open a comparison: a second balancer with its own backends, alike, on the same traffic; "
        "left and right are each side's balancer settings (algorithm, mode, hash_key, health, "
        "sticky, ...) and seed the traffic's (repeat it with the same seed)",
        ALL, compare.start,
        {"left": SETTINGS, "right": SETTINGS, "seed": Field("int", False, 0, compare.MAX_SEED)},
    ),
    "end_compare": Action(
        "close the comparison: stop the right side's processes", ALL, compare.end_compare,
    ),
    "open_lesson": Action(
        "make the lab what a lesson needs: its backends, knobs, balancer and traffic", ALL,
        lesson_setup.open_lesson, {"slug": Field("text")},
    ),
    "reset_lesson": Action(
        "put a lesson's lab back as the lesson starts", ALL, lesson_setup.reset_lesson,
        {"slug": Field("text")},
    ),
    "default_lab": Action(
        "leave the lesson: the lab as `lb-lab serve` started it, counters zeroed", ALL,
        lesson_setup.default_lab,
    ),
    # Presenter only in classroom mode, as every command (lab.web.access); its first state
    # is read from the balancer, so it waits for a balancer command to finish.
    "record": Action(
        "record the lab for this many seconds into a file `lb-lab export` plays anywhere",
        BALANCER, recording.record, {"seconds": Field("int", low=1, high=MAX_RECORD_S)},
    ),
    # The classroom (lab.web.room): the presenter's commands, refused to viewers like any.
    "set_position": Action(
        "where the presenter is (lesson, section, lesson panel, presenter view); viewers follow",
        (), class_actions.set_position,
        {"lesson": Field("text", False), "section": Field("int", low=0, high=MAX_SECTION),
         "panel": Field("bool"), "presenter_view": Field("bool")},
        announces=False,
    ),
    "set_step": Action(
        "step mode for everyone: the traffic holds, each Step sends one request", TRAFFIC,
        class_actions.set_step, {"on": Field("bool")},
    ),
    "step": Action(
        "send one request and show every page its decision (step mode)", TRAFFIC,
        class_actions.step,
    ),
    "ask_class": Action(
        "open a lesson's question (its predict block) to the class; the traffic holds",
        TRAFFIC, class_actions.ask_class,
        {"slug": Field("text"), "index": Field("int", low=0, high=MAX_SECTION)},
    ),
    "reveal": Action(
        "send the question's request (or run its experiment and judge it by its claims) and "
        "show everyone the real outcome", ALL,
        class_actions.reveal,
    ),
    "end_question": Action(
        "close the class's question; the traffic runs again if nothing else holds it",
        TRAFFIC, class_actions.end_question,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Command:
    """A checked command: the action and its clean fields (optional ones only when given)."""

    action: str
    fields: dict[str, Any] = field(default_factory=dict)


def parse_command(data: Any) -> Command:
    """Check a command from the browser; raise CommandError naming the first problem."""
    if not isinstance(data, dict):
        raise CommandError('a command is an object like {"action": "send", "count": 1}')
    action = data.get("action")
    if not isinstance(action, str) or action not in COMMANDS:
        raise CommandError(f"unknown action {action!r}; actions are: {', '.join(COMMANDS)}")
    spec = COMMANDS[action].fields
    extra = sorted(set(data) - set(spec) - {"action"})
    if extra:
        allowed = ", ".join(spec) or "no fields"
        raise CommandError(f"{action} takes {allowed}; unexpected field {extra[0]!r}")
    fields: dict[str, Any] = {}
    for name, rule in spec.items():
        if name in data:
            fields[name] = rule.check(name, data[name])
        elif rule.required:
            raise CommandError(f"{action} needs {name}")
    if spec and not fields:
        raise CommandError(f"{action} needs at least one of: {', '.join(spec)}")
    return Command(action, fields)
