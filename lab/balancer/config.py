"""The balancer's settings: one schema for flags, TOML files and live `PUT /config` updates.

Everything is validated whole before anything changes. A bad value raises
ConfigError naming the field, which the admin API turns into a 400 and the
command line into one clear line.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field

from lab.address import join_address, split_address
from lab.balancer.algorithms import ALGORITHM_NAMES, parse_hash_key
from lab.balancer.rules import DEFAULT_POOL, PoolSpec, Rule, parse_pools, parse_rules
from lab.balancer.settings import (
    SECTIONS,
    ConfigError,
    HealthSettings,
    PassiveSettings,
    ProxyProtocolSettings,
    RetrySettings,
    StickySettings,
    TimeoutSettings,
    TlsSettings,
    UdpSettings,
    parse_section,
    section_json,
    shown,
    unique_name,
    whole_number,
)
from lab.balancer.tls_config import check_passthrough, check_tls

MODES = ("http", "tcp", "udp")
MAX_WEIGHT = 256  # HAProxy's ceiling; plenty for a lab
MAX_CONNS = 100_000
BACKEND_KEYS = ("name", "address", "weight", "backup", "max_conns")
# Settings a running balancer can change through PUT /config.
LIVE_FIELDS = (
    "mode", "algorithm", "hash_key", "backends", "weights", "pools", "rules",
    *SECTIONS, "panic_threshold", "slow_start_s", "max_queue",
)  # fmt: skip

__all__ = ["BackendSpec", "BalancerConfig", "ConfigError", "apply_update", "from_dict"]


@dataclass(frozen=True)
class BackendSpec:
    name: str
    host: str
    port: int
    weight: int = 1
    backup: bool = False  # used only while every primary backend is down
    max_conns: int = 0  # requests (L7) or connections (L4) at once; 0 = no limit

    @property
    def address(self) -> str:
        return join_address(self.host, self.port)

    def as_json(self) -> dict:
        data: dict = {"name": self.name, "address": self.address, "weight": self.weight}
        if self.backup:
            data["backup"] = True
        if self.max_conns:
            data["max_conns"] = self.max_conns
        return data


@dataclass(frozen=True)
class BalancerConfig:
    mode: str = "http"
    listen: tuple[str, int] = ("127.0.0.1", 8080)
    admin: tuple[str, int] = ("127.0.0.1", 8081)
    algorithm: str = "round-robin"
    hash_key: str = "client-ip"
    backends: tuple[BackendSpec, ...] = field(default_factory=tuple)
    seed: int | None = None  # seeds the balancer's RNG so a run can be replayed
    # How far a slow /events reader may fall behind before its events are dropped.
    events_queue: int = 10_000
    # Named pools and the ordered rules that send requests to them (Layer 7 only).
    # The pool called "default" holds every backend unless `pools` defines it.
    pools: tuple[PoolSpec, ...] = ()
    rules: tuple[Rule, ...] = ()
    health: HealthSettings = field(default_factory=HealthSettings)
    passive: PassiveSettings = field(default_factory=PassiveSettings)
    retries: RetrySettings = field(default_factory=RetrySettings)
    sticky: StickySettings = field(default_factory=StickySettings)
    timeouts: TimeoutSettings = field(default_factory=TimeoutSettings)
    proxy_protocol: ProxyProtocolSettings = field(default_factory=ProxyProtocolSettings)
    udp: UdpSettings = field(default_factory=UdpSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    # Envoy's panic mode: below this percentage of healthy backends in a pool, route to
    # all of them, healthy or not. 0 (the default) means never: answer 503 instead.
    panic_threshold: int = 0
    slow_start_s: float = 0.0  # a backend back in service ramps up over this window; 0 = off
    max_queue: int = 100  # requests waiting per pool when every backend is at max_conns

    def as_json(self) -> dict:
        data = {
            "mode": self.mode,
            "listen": format_address(self.listen),
            "admin": format_address(self.admin),
            "algorithm": self.algorithm,
            "hash_key": self.hash_key,
            "backends": [b.as_json() for b in self.backends],
            "pools": [p.as_json() for p in self.pools],
            "rules": [r.as_json() for r in self.rules],
            "panic_threshold": self.panic_threshold,
            "slow_start_s": self.slow_start_s,
            "max_queue": self.max_queue,
        }
        for name in SECTIONS:
            data[name] = section_json(getattr(self, name))
        return data


def format_address(address: tuple[str, int]) -> str:
    return join_address(*address)


def parse_address(text: object, field_name: str) -> tuple[str, int]:
    """'127.0.0.1:8080' -> ('127.0.0.1', 8080); port 0 means any free port."""
    try:
        return split_address(text)
    except ValueError as exc:
        raise ConfigError(field_name, str(exc)) from None


def parse_backend_flag(text: str) -> dict:
    """'b1=127.0.0.1:9001,weight=2' -> {'name': 'b1', 'address': ..., 'weight': 2}."""
    name, sep, rest = text.partition("=")
    if not sep:
        raise ConfigError("backend", f"expected NAME=HOST:PORT[,weight=W], got {shown(text)}")
    address, *options = rest.split(",")
    spec: dict = {"name": name, "address": address}
    for option in options:
        key, sep, value = option.partition("=")
        if option == "backup":
            spec["backup"] = True
        elif key in ("weight", "max_conns") and sep:
            spec[key] = whole_number(value, f"backends.{name}.{key}")
        else:
            raise ConfigError(
                "backend",
                f"unknown backend option {option!r} (weight=W, max_conns=N or backup)",
            )
    return spec


def _weight(value: object, field_name: str) -> int:
    weight = whole_number(value, field_name)
    if not 1 <= weight <= MAX_WEIGHT:
        raise ConfigError(field_name, f"weight must be 1-{MAX_WEIGHT}, got {shown(weight)}")
    return weight


def parse_backends(items: object) -> tuple[BackendSpec, ...]:
    if not isinstance(items, list):
        raise ConfigError("backends", "expected a list of {name, address, weight}")
    specs: list[BackendSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"backends[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(where, "expected a table with name and address")
        unknown = set(item) - set(BACKEND_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}.{sorted(unknown)[0]}",
                f"unknown backend setting; known: {', '.join(BACKEND_KEYS)}",
            )
        name = unique_name(item.get("name"), where, seen, "backend")
        host, port = parse_address(item.get("address"), f"{where}.address")
        if port == 0:
            raise ConfigError(f"{where}.address", "a backend needs a real port, not 0")
        backup = item.get("backup", False)
        if not isinstance(backup, bool):
            raise ConfigError(f"{where}.backup", f"expected true or false, got {shown(backup)}")
        max_conns = whole_number(item.get("max_conns", 0), f"{where}.max_conns")
        if not 0 <= max_conns <= MAX_CONNS:
            raise ConfigError(f"{where}.max_conns", f"must be 0 (no limit) to {MAX_CONNS}")
        weight = _weight(item.get("weight", 1), f"{where}.weight")
        specs.append(BackendSpec(name, host, port, weight, backup, max_conns))
    return tuple(specs)


def _algorithm(value: object) -> str:
    if value not in ALGORITHM_NAMES:
        raise ConfigError(
            "algorithm",
            f"unknown algorithm {shown(value)}; choose one of: " + ", ".join(ALGORITHM_NAMES),
        )
    return value  # type: ignore[return-value]


def _mode(value: object) -> str:
    if value not in MODES:
        raise ConfigError(
            "mode",
            f"mode must be 'http' (Layer 7), 'tcp' or 'udp' (Layer 4), got {shown(value)}",
        )
    return value  # type: ignore[return-value]


def _hash_key(value: object) -> str:
    try:
        parse_hash_key(value)
    except ValueError as exc:
        raise ConfigError("hash_key", str(exc)) from None
    return value  # type: ignore[return-value]


def from_dict(data: dict, base: BalancerConfig | None = None) -> BalancerConfig:
    """Build a whole config from a TOML-shaped dict, on top of `base` (defaults if None)."""
    base = base or BalancerConfig()
    known = {f.name for f in dataclasses.fields(BalancerConfig)}
    for key in data:
        if key not in known:
            raise ConfigError(key, "unknown setting")
    changes: dict = {}
    if "mode" in data:
        changes["mode"] = _mode(data["mode"])
    if "algorithm" in data:
        changes["algorithm"] = _algorithm(data["algorithm"])
    if "hash_key" in data:
        changes["hash_key"] = _hash_key(data["hash_key"])
    for key in ("listen", "admin"):
        if key in data:
            changes[key] = parse_address(data[key], key)
    if "backends" in data:
        changes["backends"] = parse_backends(data["backends"])
    if "seed" in data:
        changes["seed"] = None if data["seed"] is None else whole_number(data["seed"], "seed")
    if "events_queue" in data:
        changes["events_queue"] = whole_number(data["events_queue"], "events_queue")
        if not 10 <= changes["events_queue"] <= 1_000_000:
            raise ConfigError("events_queue", "must be 10-1000000 events")
    for name in SECTIONS:
        if name in data:
            changes[name] = parse_section(name, data[name], getattr(base, name))
    if "panic_threshold" in data:
        changes["panic_threshold"] = _bounded(data["panic_threshold"], "panic_threshold", 0, 100)
    if "max_queue" in data:
        changes["max_queue"] = _bounded(data["max_queue"], "max_queue", 0, 100_000)
    if "slow_start_s" in data:
        value = data["slow_start_s"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
            raise ConfigError("slow_start_s", f"expected 0-3600 seconds, got {shown(value)}")
        changes["slow_start_s"] = float(value)
    backend_names = {b.name for b in changes.get("backends", base.backends)}
    if "pools" in data:
        changes["pools"] = parse_pools(data["pools"], backend_names, _pool_algorithm)
    if "rules" in data:
        pools = changes.get("pools", base.pools)
        changes["rules"] = parse_rules(data["rules"], {DEFAULT_POOL, *(p.name for p in pools)})
    config = dataclasses.replace(base, **changes)
    check_whole(config)
    return config


def _bounded(value: object, field_name: str, low: int, high: int) -> int:
    number = whole_number(value, field_name)
    if not low <= number <= high:
        raise ConfigError(field_name, f"must be {low}-{high}, got {shown(number)}")
    return number


def _pool_algorithm(where: str, algorithm: object, hash_key: object) -> None:
    if algorithm is not None:
        try:
            _algorithm(algorithm)
        except ConfigError as exc:
            raise ConfigError(f"{where}.algorithm", exc.message) from None
    if hash_key is not None:
        try:
            _hash_key(hash_key)
        except ConfigError as exc:
            raise ConfigError(f"{where}.hash_key", exc.message) from None


def check_whole(config: BalancerConfig) -> None:
    """Rules that tie settings together, checked after every change, whatever changed."""
    names = {b.name for b in config.backends}
    for i, pool in enumerate(config.pools):
        missing = [m for m in pool.backends if m not in names]
        if missing:
            raise ConfigError(
                f"pools[{i}].backends",
                f"pool {pool.name!r} lists {missing[0]!r}, which is not a backend any more",
            )
    pool_names = {DEFAULT_POOL, *(p.name for p in config.pools)}
    for i, rule in enumerate(config.rules):
        if rule.pool not in pool_names:
            raise ConfigError(f"rules[{i}].pool", f"no pool named {rule.pool!r}")
    check_passthrough(config)
    passthrough = config.tls.mode == "passthrough"
    if config.mode in ("tcp", "udp"):
        what = "bytes" if config.mode == "tcp" else "datagrams"
        if config.rules and not passthrough:
            raise ConfigError(
                "rules",
                "routing rules need Layer 7 (mode http): at Layer 4 the balancer sees only "
                f"addresses and {what}, never a path, host, header, cookie or method"
                + (
                    '; with tls.mode = "passthrough" it reads the TLS server name, '
                    "and sni and host rules route on it"
                    if config.mode == "tcp"
                    else ""
                ),
            )
        if config.sticky.mode == "cookie":
            raise ConfigError(
                "sticky.mode",
                "a sticky cookie needs Layer 7 (mode http): at Layer 4 the balancer cannot "
                'read or set cookies; use "source" to pin by client address',
            )
    check_tls(config)
    if config.mode == "udp" and config.health.type in ("http", "tcp"):
        raise ConfigError(
            "health.type",
            f"a {config.health.type} check cannot tell whether a UDP service answers: "
            'use "udp" (a probe datagram and its reply) or "" to follow the mode',
        )


def load_toml(path: str) -> BalancerConfig:
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
    return from_dict(data)


def apply_update(config: BalancerConfig, update: object) -> tuple[BalancerConfig, dict]:
    """Validate a partial live update and return the new config plus what changed.

    `weights` ({"b1": 3}) re-weights existing backends; `backends` replaces the
    list (names that stay keep their live state).
    """
    if not isinstance(update, dict) or not update:
        raise ConfigError("config", "expected a JSON object with at least one setting")
    for key in update:
        if key not in LIVE_FIELDS:
            why = (
                "cannot change while running"
                if key in ("listen", "admin", "seed", "events_queue")
                else "unknown setting"
            )
            raise ConfigError(key, why)
    plain = {k: v for k, v in update.items() if k != "weights"}
    new = from_dict(plain, base=config)
    if "weights" in update:
        new = dataclasses.replace(new, backends=_reweigh(new.backends, update["weights"]))
    old_json, new_json = config.as_json(), new.as_json()
    changes = {key: value for key, value in new_json.items() if old_json[key] != value}
    return new, changes


def _reweigh(backends: tuple[BackendSpec, ...], weights: object) -> tuple[BackendSpec, ...]:
    if not isinstance(weights, dict) or not weights:
        raise ConfigError("weights", 'expected an object like {"b1": 3}')
    names = {b.name for b in backends}
    for name in weights:
        if name not in names:
            raise ConfigError(f"weights.{name}", f"no backend named {name!r}")
    return tuple(
        dataclasses.replace(b, weight=_weight(weights[b.name], f"weights.{b.name}"))
        if b.name in weights
        else b
        for b in backends
    )
