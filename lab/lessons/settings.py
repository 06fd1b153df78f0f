"""A lesson's `settings`: the lab it needs, each part checked by its owner's own schema.

    settings:
      backends:                       # or a number: 3 means plain b1, b2, b3
        - {name: b1, weight: 5}
        - {name: b2, latency_ms: 300}
      balancer: {algorithm: round-robin, mode: http}
      traffic: {rate: 0, clients: 4, keep_alive: true, paused: true}
      balancers: 2                    # optional: a second balancer on the same backends

With `balancers: 2` the lab runs two balancer processes in front of the same
backend processes, each with only its own view (what it sent itself), and the
clients are shared out between them (lab.web.compare, `same_backends`).

A backend entry mixes two kinds of keys. The toy backend's knobs (latency_ms,
jitter_ms, error_rate, max_concurrency, ...) go to that backend process and are
checked by `lab.backend.knobs`; every other key (weight, and whatever the
balancer's backends accept) goes into the balancer's backend list.

`balancer` is a partial balancer config, exactly as `PUT /config` takes it, and
is checked by the balancer's own `apply_update`. Whatever a lesson leaves out
takes the lab's default (`balancer_defaults`: a fresh balancer's, with active
health checks on), so a lesson never inherits the last one's settings; a table
given in part (`health: {interval_ms: 200}`) keeps the lab's other values.
`traffic` is checked by the traffic generator's own schema; a lesson starts
paused unless it says otherwise, so that what moves is what the learner sent.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from lab.backend.knobs import Knobs
from lab.balancer.config import LIVE_FIELDS, BalancerConfig, ConfigError, apply_update
from lab.balancer.settings import SECTIONS
from lab.errors import FieldError
from lab.lessons.errors import LessonError
from lab.traffic.settings import Settings as TrafficSettings

MAX_BACKENDS = 12  # as the lab controller
BALANCERS = (1, 2)  # the lab itself, or a second balancer beside it on the same backends
BACKEND_NAME = re.compile(r"^b([1-9][0-9]?)$")
KNOB_NAMES = tuple(f.name for f in dataclasses.fields(Knobs))
DEFAULT_KNOBS = Knobs().as_json()
LESSON_TRAFFIC = {"rate": 2.0, "clients": 4, "keep_alive": True, "paused": True}
# Backend keys the lab fills in itself; a lesson cannot set them.
LAB_OWNED = ("address",)
# Balancer settings that come from `backends`, not from `balancer`.
FROM_BACKENDS = ("backends", "weights")
# The lab probes every backend, so a killed one shows as down even with no traffic to
# notice it: every second, half a second to answer, two in a row either way.
LAB_HEALTH = {"enabled": True, "interval_ms": 1000, "timeout_ms": 500, "rise": 2, "fall": 2}


@dataclass(frozen=True)
class BackendSetting:
    """One backend a lesson wants: its knobs (all of them) and its balancer settings."""

    name: str
    knobs: dict[str, Any]
    balancer: dict[str, Any]

    def spec(self, address: str) -> dict[str, Any]:
        """This backend's entry in the balancer's `backends` list."""
        return {"name": self.name, "address": address, **self.balancer}


@dataclass(frozen=True)
class LabSetup:
    """The whole lab a lesson starts from."""

    backends: tuple[BackendSetting, ...]
    balancer: dict[str, Any]  # what the lesson said; balancer_document() adds the defaults
    traffic: dict[str, Any]  # every traffic setting
    balancers: int = 1

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.backends]

    def balancer_document(self, addresses: dict[str, str]) -> dict[str, Any]:
        """The `PUT /config` body that makes the balancer exactly what the lesson wants."""
        defaults = balancer_defaults()
        document = {**defaults, **self.balancer}
        for key in SECTIONS:  # a table given in part keeps the lab's other settings
            if isinstance(self.balancer.get(key), dict):
                document[key] = {**defaults[key], **self.balancer[key]}
        document["backends"] = [b.spec(addresses[b.name]) for b in self.backends]
        return document

    def placeholder_addresses(self) -> dict[str, str]:
        """Addresses good enough to validate and to draw config snippets before a lab runs."""
        return {b.name: f"127.0.0.1:{9000 + int(b.name[1:])}" for b in self.backends}

    def as_json(self) -> dict[str, Any]:
        return {
            "backends": [{"name": b.name, **b.balancer, **b.knobs} for b in self.backends],
            "balancer": dict(self.balancer),
            "traffic": dict(self.traffic),
            **({"balancers": self.balancers} if self.balancers != 1 else {}),
        }


def balancer_defaults() -> dict[str, Any]:
    """Every setting a running balancer can change, at the lab's default: a fresh
    balancer's, except that the lab runs active health checks (LAB_HEALTH)."""
    fresh = BalancerConfig().as_json()
    defaults = {k: v for k, v in fresh.items() if k in LIVE_FIELDS and k not in FROM_BACKENDS}
    defaults["health"] = {**defaults["health"], **LAB_HEALTH}
    return defaults


def parse_setup(data: Any) -> LabSetup:
    """Check a lesson's `settings` whole; raise LessonError naming the first problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LessonError("settings must be a mapping of backends, balancer and traffic")
    unknown = sorted(set(data) - {"backends", "balancer", "traffic", "balancers"})
    if unknown:
        raise LessonError(
            f"unknown setting {unknown[0]!r}; settings are backends, balancer, traffic "
            "and balancers",
            "settings",
        )
    balancers = data.get("balancers", 1)
    if isinstance(balancers, bool) or balancers not in BALANCERS:
        raise LessonError(
            f"the lab runs 1 balancer or 2 on the same backends, got {balancers!r}",
            "settings.balancers",
        )
    backends = _backends(data.get("backends", 3))
    balancer, traffic = _balancer(data.get("balancer")), _traffic(data.get("traffic"))
    if "protocol" not in (data.get("traffic") or {}):  # the clients speak the balancer's layer
        traffic["protocol"] = "udp" if balancer.get("mode") == "udp" else "http"
    setup = LabSetup(backends, balancer, traffic, balancers)
    try:
        apply_update(BalancerConfig(), setup.balancer_document(setup.placeholder_addresses()))
    except ConfigError as exc:
        raise LessonError(f"the balancer says: {exc}", "settings.balancer") from None
    return setup


def _backends(value: Any) -> tuple[BackendSetting, ...]:
    where = "settings.backends"
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_BACKENDS:
            raise LessonError(f"the lab runs 1 to {MAX_BACKENDS} backends, got {value}", where)
        value = [{"name": f"b{i}"} for i in range(1, value + 1)]
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_BACKENDS:
        raise LessonError(f"expected a number or a list of 1 to {MAX_BACKENDS} backends", where)
    seen: set[str] = set()
    result = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise LessonError("expected a mapping like {name: b1, weight: 2}", at)
        name = item.get("name")
        if not isinstance(name, str) or not BACKEND_NAME.match(name) or int(name[1:]) > 12:
            raise LessonError(f"lab backends are named b1 to b{MAX_BACKENDS}, got {name!r}", at)
        if name in seen:
            raise LessonError(f"{name} is listed twice", at)
        seen.add(name)
        owned = sorted(set(item) & set(LAB_OWNED))
        if owned:
            raise LessonError(f"the lab sets {owned[0]} itself", at)
        knobs = {k: v for k, v in item.items() if k in KNOB_NAMES}
        try:
            checked = Knobs().updated(knobs).as_json()
        except FieldError as exc:
            raise LessonError(exc.message, f"{at}.{exc.field}") from None
        others = {k: v for k, v in item.items() if k not in KNOB_NAMES and k != "name"}
        result.append(BackendSetting(name, checked, others))
    return tuple(result)


def _balancer(value: Any) -> dict[str, Any]:
    where = "settings.balancer"
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LessonError("expected a mapping, as PUT /config takes it", where)
    for key in FROM_BACKENDS:
        if key in value:
            raise LessonError(f"set {key} in settings.backends, not here", f"{where}.{key}")
    return dict(value)


def _traffic(value: Any) -> dict[str, Any]:
    where = "settings.traffic"
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise LessonError(
            "expected a mapping of rate, clients, keep_alive, paused, protocol, udp_session, "
            "heavy_share, heavy_ms",
            where,
        )
    try:
        settings = TrafficSettings(**LESSON_TRAFFIC).updated(value)
    except FieldError as exc:
        raise LessonError(exc.message, f"{where}.{exc.field}") from None
    return settings.as_json()
