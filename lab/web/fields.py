"""The fields of a command: each one's kind and limits, and the one error a bad value raises."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


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
