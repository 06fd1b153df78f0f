"""The balancer's settings: one schema for flags, TOML files and live `PUT /config` updates.

Everything is validated whole before anything changes. A bad value raises
ConfigError naming the field, which the admin API turns into a 400 and the
command line into one clear line.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field

from lab.balancer.algorithms import ALGORITHM_NAMES, parse_hash_key

MODES = ("http", "tcp")
MAX_WEIGHT = 256  # HAProxy's ceiling; plenty for a lab
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# Settings a running balancer can change through PUT /config.
LIVE_FIELDS = ("mode", "algorithm", "hash_key", "backends", "weights")


class ConfigError(ValueError):
    """A setting that cannot be used, with the field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def as_json(self) -> dict:
        return {"error": str(self), "field": self.field}


@dataclass(frozen=True)
class BackendSpec:
    name: str
    host: str
    port: int
    weight: int = 1

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def as_json(self) -> dict:
        return {"name": self.name, "address": self.address, "weight": self.weight}


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

    def as_json(self) -> dict:
        return {
            "mode": self.mode,
            "listen": format_address(self.listen),
            "admin": format_address(self.admin),
            "algorithm": self.algorithm,
            "hash_key": self.hash_key,
            "backends": [b.as_json() for b in self.backends],
        }


def format_address(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def parse_address(text: object, field_name: str) -> tuple[str, int]:
    """'127.0.0.1:8080' -> ('127.0.0.1', 8080); port 0 means any free port."""
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(field_name, f"expected HOST:PORT, got {text!r}")
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not host:
        raise ConfigError(field_name, f"missing host in {text!r}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(field_name, f"port must be 0-65535, got {port_text!r}")
    return host, int(port_text)


def parse_backend_flag(text: str) -> dict:
    """'b1=127.0.0.1:9001,weight=2' -> {'name': 'b1', 'address': ..., 'weight': 2}."""
    name, sep, rest = text.partition("=")
    if not sep:
        raise ConfigError("backend", f"expected NAME=HOST:PORT[,weight=W], got {text!r}")
    address, *options = rest.split(",")
    spec: dict = {"name": name, "address": address}
    for option in options:
        key, sep, value = option.partition("=")
        if key != "weight" or not sep:
            raise ConfigError("backend", f"unknown backend option {option!r} (only weight=W)")
        spec["weight"] = _int(value, f"backends.{name}.weight")
    return spec


def _int(value: object, field_name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(field_name, f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ConfigError(field_name, f"expected a whole number, got {value!r}")


def _weight(value: object, field_name: str) -> int:
    weight = _int(value, field_name)
    if not 1 <= weight <= MAX_WEIGHT:
        raise ConfigError(field_name, f"weight must be 1-{MAX_WEIGHT}, got {weight}")
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
        unknown = set(item) - {"name", "address", "weight"}
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}", "unknown backend setting")
        name = item.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ConfigError(f"{where}.name", f"names are 1-32 of A-Z a-z 0-9 _ -, got {name!r}")
        if name in seen:
            raise ConfigError(f"{where}.name", f"duplicate backend name {name!r}")
        seen.add(name)
        host, port = parse_address(item.get("address"), f"{where}.address")
        if port == 0:
            raise ConfigError(f"{where}.address", "a backend needs a real port, not 0")
        specs.append(
            BackendSpec(name, host, port, _weight(item.get("weight", 1), f"{where}.weight"))
        )
    return tuple(specs)


def _algorithm(value: object) -> str:
    if value not in ALGORITHM_NAMES:
        raise ConfigError(
            "algorithm",
            f"unknown algorithm {value!r}; choose one of: " + ", ".join(ALGORITHM_NAMES),
        )
    return value  # type: ignore[return-value]


def _mode(value: object) -> str:
    if value not in MODES:
        raise ConfigError(
            "mode", f"mode must be 'http' (Layer 7) or 'tcp' (Layer 4), got {value!r}"
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
        changes["seed"] = None if data["seed"] is None else _int(data["seed"], "seed")
    if "events_queue" in data:
        changes["events_queue"] = _int(data["events_queue"], "events_queue")
        if not 10 <= changes["events_queue"] <= 1_000_000:
            raise ConfigError("events_queue", "must be 10-1000000 events")
    return dataclasses.replace(base, **changes)


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
    changes = {}
    for key in ("mode", "algorithm", "hash_key"):
        if getattr(new, key) != getattr(config, key):
            changes[key] = getattr(new, key)
    if new.backends != config.backends:
        changes["backends"] = [b.as_json() for b in new.backends]
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
