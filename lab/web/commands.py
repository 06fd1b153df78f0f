"""The commands a browser (or a lesson) may send, checked whole before anything changes.

A command is a JSON object: `{"action": "set_weight", "name": "b2", "weight": 3}`.
`parse_command` returns a clean `Command` or raises `CommandError` with one
line a learner can read. Whether a named backend exists is the controller's
business: only it knows the lab's current backends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lab.backend.knobs import MAX_MS
from lab.balancer.algorithms import ALGORITHM_NAMES
from lab.balancer.config import MAX_WEIGHT, MODES
from lab.traffic.settings import MAX_CLIENTS, MAX_RATE, MAX_SEND


class CommandError(ValueError):
    """A command that cannot be carried out; the message goes back to the browser as is."""


@dataclass(frozen=True)
class Field:
    """One field of a command: its kind ("text", "int", "number", "bool") and its limits."""

    kind: str
    required: bool = True
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def check(self, name: str, value: Any) -> Any:
        """The clean value, or CommandError saying what was expected."""
        clean = _KINDS[self.kind](name, value)
        if self.choices and clean not in self.choices:
            raise CommandError(f"{name} must be one of: {', '.join(self.choices)}; got {value!r}")
        if self.low is not None and self.high is not None and not self.low <= clean <= self.high:
            raise CommandError(f"{name} must be {self.low:g} to {self.high:g}, got {value!r}")
        return clean


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CommandError(f"{name} must be text, got {value!r}")
    return value.strip()


def _int(name: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError(f"{name} must be a whole number, got {value!r}")
    return value


def _number(name: str, value: Any) -> float:
    # bool is an int in Python, but {"weight": true} is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CommandError(f"{name} must be a number, got {value!r}")
    return float(value)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise CommandError(f"{name} must be true or false, got {value!r}")
    return value


MAX_DEPTH = 8  # the balancer's own settings nest three deep at most (pools[0].backends[0])


def _object(name: str, value: Any) -> dict:
    if not isinstance(value, dict) or not value:
        example = '{"sticky": {"mode": "cookie"}}'
        raise CommandError(f"{name} must be an object of settings, like {example}")
    _plain(name, value, 1)
    return value


def _plain(name: str, value: Any, depth: int) -> None:
    """Refuse what JSON cannot carry to the balancer as written: NaN, Infinity, deep nesting."""
    if depth > MAX_DEPTH:
        raise CommandError(f"{name} nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise CommandError(f"{name} must be a finite number, got {value!r}")
    if isinstance(value, dict):
        for key, child in value.items():
            _plain(f"{name}.{key}", child, depth + 1)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _plain(f"{name}[{index}]", child, depth + 1)


_KINDS = {"text": _text, "int": _int, "number": _number, "bool": _bool, "object": _object}

NAME = Field("text")
MAX_CONCURRENCY = 1000  # a backend working on more requests at once than this is no lesson
MS = Field("number", low=0, high=MAX_MS)

# action -> its fields. The contract with the page and the lessons (see DESIGN.md).
COMMANDS: dict[str, dict[str, Field]] = {
    "set_algorithm": {"algorithm": Field("text", choices=ALGORITHM_NAMES)},
    "set_hash_key": {"hash_key": Field("text")},
    "set_mode": {"mode": Field("text", choices=MODES)},
    "add_backend": {},
    "remove_backend": {"name": NAME},
    "kill_backend": {"name": NAME},
    "restart_backend": {"name": NAME},
    "set_weight": {"name": NAME, "weight": Field("int", low=1, high=MAX_WEIGHT)},
    "set_latency": {"name": NAME, "latency_ms": MS, "jitter_ms": Field("number", False, 0, MAX_MS)},
    "set_error_rate": {"name": NAME, "error_rate": Field("number", low=0, high=1)},
    # /health answers 503 while the backend still serves everything else (active checks fail).
    "set_healthy": {"name": NAME, "healthy": Field("bool")},
    "drain_backend": {"name": NAME, "draining": Field("bool")},
    # Any balancer settings the page has no control for (health, sticky, rules, ...): the
    # balancer validates them whole, as PUT /config does.
    "configure": {"settings": Field("object")},
    "set_max_concurrency": {
        "name": NAME,
        "max_concurrency": Field("int", low=0, high=MAX_CONCURRENCY),
    },
    "set_traffic": {
        "rate": Field("number", False, 0, MAX_RATE),
        "clients": Field("int", False, 1, MAX_CLIENTS),
        "keep_alive": Field("bool", False),
    },
    "send": {"count": Field("int", low=1, high=MAX_SEND)},
    "pause": {},
    "resume": {},
    "reset": {},
    # A lesson's whole lab at once (lab.lessons): its backends, balancer and traffic.
    "open_lesson": {"slug": Field("text")},
    "reset_lesson": {"slug": Field("text")},
    "default_lab": {},  # leave the lesson: the lab as `lb-lab serve` started it
}


# action -> the parts of the lab it needs to itself while it runs (see lab.web.turns).
BACKENDS, BALANCER, TRAFFIC = ("backends",), ("balancer",), ("traffic",)
ALL = BACKENDS + BALANCER + TRAFFIC
NEEDS: dict[str, tuple[str, ...]] = {
    "set_algorithm": BALANCER,
    "set_hash_key": BALANCER,
    "set_mode": BALANCER + TRAFFIC,  # then the traffic reconnects
    "add_backend": BACKENDS + BALANCER,
    "remove_backend": BACKENDS + BALANCER,
    "kill_backend": BACKENDS,
    "restart_backend": BACKENDS + BALANCER,  # the balancer hears if the port changed
    "set_weight": BALANCER,
    "set_latency": BACKENDS,
    "set_error_rate": BACKENDS,
    "set_healthy": BACKENDS,
    "drain_backend": BALANCER,
    "configure": BALANCER,
    "set_max_concurrency": BACKENDS,
    "set_traffic": TRAFFIC,
    "send": TRAFFIC,
    "pause": TRAFFIC,
    "resume": TRAFFIC,
    "reset": ALL,
    "open_lesson": ALL,
    "reset_lesson": ALL,
    "default_lab": ALL,
}


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
    spec = COMMANDS[action]
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
