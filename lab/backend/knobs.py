"""The toy backend's run-time settings (its knobs) and the rules that keep them sane.

Validation is pure and shared: the command line, `PUT /_lab/knobs` and the
tests all go through `Knobs.updated`, which checks a whole change before any
of it takes effect.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from lab.errors import FieldError

MAX_MS = 60_000.0  # one minute: longer than any lesson needs, short enough to never hang a test run
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


class KnobError(FieldError):
    """A knob value that cannot be used; `field` names the knob."""


@dataclass(frozen=True, slots=True)
class Knobs:
    """What a learner can turn on one backend while it runs."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    max_concurrency: int = 0
    healthy: bool = True

    def updated(self, changes: Any) -> Knobs:
        """A copy with `changes` (a partial mapping) applied, or KnobError if any of it is bad."""
        if not isinstance(changes, dict):
            raise KnobError(None, 'expected a JSON object of knobs, e.g. {"latency_ms": 50}')
        known = {f.name for f in dataclasses.fields(self)}
        clean: dict[str, Any] = {}
        for field, value in changes.items():
            if field not in known:
                names = ", ".join(sorted(known))
                raise KnobError(field, f"unknown knob {field!r}; knobs are {names}")
            clean[field] = _CHECKS[field](field, value)
        return dataclasses.replace(self, **clean)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def milliseconds(field: str, value: Any) -> float:
    """A duration in ms: a number from 0 to MAX_MS."""
    number = _number(field, value)
    if not 0 <= number <= MAX_MS:
        raise KnobError(field, f"{field} must be between 0 and {MAX_MS:.0f} ms, got {value!r}")
    return number


def fraction(field: str, value: Any) -> float:
    """A probability: a number from 0 to 1."""
    number = _number(field, value)
    if not 0 <= number <= 1:
        raise KnobError(field, f"{field} must be between 0 and 1, got {value!r}")
    return number


def count(field: str, value: Any) -> int:
    """A whole number, 0 or more."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KnobError(field, f"{field} must be a whole number, 0 or more, got {value!r}")
    return value


def flag(field: str, value: Any) -> bool:
    """true or false, nothing else (no 0/1, no strings)."""
    if not isinstance(value, bool):
        raise KnobError(field, f"{field} must be true or false, got {value!r}")
    return value


def backend_name(value: str) -> str:
    """A name that is safe in a header, a URL and a JSON string without escaping."""
    if not NAME_PATTERN.fullmatch(value):
        raise KnobError("name", f"name must be 1-64 of A-Z a-z 0-9 _ -, got {value!r}")
    return value


def _number(field: str, value: Any) -> float:
    # bool is an int in Python, but `"latency_ms": true` is a mistake, not 1 ms.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise KnobError(field, f"{field} must be a number, got {value!r}")
    return float(value)


_CHECKS = {
    "latency_ms": milliseconds,
    "jitter_ms": milliseconds,
    "error_rate": fraction,
    "max_concurrency": count,
    "healthy": flag,
}


def argparse_type(check, field: str):
    """Turn a knob check into an argparse `type=` that reports one clear line."""

    def parse(text: str):
        try:
            return check(field, float(text))
        except ValueError as exc:
            if not isinstance(exc, KnobError):
                raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
            # argparse already names the flag: "argument --error-rate: must be between 0 and 1"
            raise argparse.ArgumentTypeError(exc.message.removeprefix(f"{exc.field} ")) from None

    return parse


def name_type(text: str) -> str:
    """argparse `type=` for --name."""
    try:
        return backend_name(text)
    except KnobError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
