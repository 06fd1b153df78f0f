"""The config's tables: health checks, passive health, retries, sticky sessions and timeouts.

Each table is a frozen dataclass whose fields carry their own limits, so one
small parser validates a TOML table, a flag and a live `PUT /config` alike.
A live update may give part of a table: `{"health": {"interval_ms": 500}}`
keeps every other health setting as it was.

Defaults follow the peers where they agree (see the README's table): HAProxy's
`inter 2s rise 2 fall 3`, nginx's `max_fails=1 fail_timeout=10s`, three tries
as HAProxy's `retries 3`, and its `cookie SERVERID insert indirect nocache`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from dataclasses import dataclass, field
from typing import Any

from lab.errors import FieldError


class ConfigError(FieldError):
    """A setting that cannot be used, with the field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field: str = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def as_json(self) -> dict:
        return {"error": str(self), "field": self.field}


NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # backends, pools and rules
# ASCII digits only: str.isdigit() also says yes to "²" and "٣", which int() then refuses.
WHOLE_TEXT = re.compile(r"\s*-?[0-9]{1,18}\s*")


def whole_number(value: object, where: str) -> int:
    """A whole number, given as a number or as text of ASCII digits ("3", " -1 ")."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and WHOLE_TEXT.fullmatch(value):
        return int(value)
    raise ConfigError(where, f"expected a whole number, got {shown(value)}")


def shown(value: object) -> str:
    """A value as an error message quotes it: repr, cut short (a body may hold 1 MiB of it)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def unique_name(value: object, where: str, seen: set[str], kind: str) -> str:
    """A backend's, pool's or rule's name: well formed and not used twice in its list."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ConfigError(f"{where}.name", f"names are 1-32 of A-Z a-z 0-9 _ -, got {value!r}")
    if value in seen:
        raise ConfigError(f"{where}.name", f"duplicate {kind} name {value!r}")
    seen.add(value)
    return value


def limits(low: float | None = None, high: float | None = None, choices: tuple = ()) -> Any:
    """A dataclass field's validation rule, kept in its metadata."""
    return {"low": low, "high": high, "choices": choices}


def setting(default: Any, low=None, high=None, choices: tuple = ()) -> Any:
    return field(default=default, metadata=limits(low, high, choices))


@dataclass(frozen=True)
class HealthSettings:
    """Active health checks: a real probe of every backend, every interval."""

    enabled: bool = setting(False)
    # "http" sends GET path and wants 2xx or 3xx; "tcp" only connects; "udp" sends
    # udp_send as one datagram and wants a reply holding udp_expect. "" follows the mode.
    type: str = setting("", choices=("", "http", "tcp", "udp"))
    path: str = setting("/health")
    udp_send: str = setting("health")  # the toy backends answer this with their health
    udp_expect: str = setting('"healthy":true')  # "" passes any reply
    interval_ms: int = setting(2000, 50, 600_000)
    timeout_ms: int = setting(1000, 10, 60_000)  # capped at interval_ms, as HAProxy does
    rise: int = setting(2, 1, 100)  # good checks in a row to come back
    fall: int = setting(3, 1, 100)  # failed checks in a row to go down


@dataclass(frozen=True)
class PassiveSettings:
    """Passive health, nginx's way: max_fails failures within fail_timeout_s take a
    backend out for fail_timeout_s. max_fails = 0 turns it off."""

    max_fails: int = setting(1, 0, 1000)
    fail_timeout_s: float = setting(10.0, 0.1, 3600)
    on_5xx: bool = setting(False)  # also count 5xx answers as failures


@dataclass(frozen=True)
class RetrySettings:
    """Retries on another backend when nothing of the response reached the client yet."""

    tries: int = setting(3, 1, 100)  # attempts per request, the first included
    # Replay a request that a backend may have received, even POST or PATCH.
    # Off by default, as in nginx: a payment must not be taken twice.
    non_idempotent: bool = setting(False)
    # A retry budget (lab.balancer.retry_budget): over the last 10 s, retries at most this
    # % of the requests, plus min_per_s a second. 0 (the default) sets no budget, as in
    # nginx and HAProxy; Linkerd's default is 20 % and 10 a second.
    budget_percent: float = setting(0.0, 0, 100)
    min_per_s: float = setting(10.0, 0, 10_000)


@dataclass(frozen=True)
class StickySettings:
    """Session persistence: "cookie" inserts a cookie naming the backend (Layer 7 only);
    "source" pins each client address to its first backend for expire_s."""

    mode: str = setting("off", choices=("off", "cookie", "source"))
    cookie: str = setting("SERVERID")
    expire_s: float = setting(1800.0, 1, 86_400)


@dataclass(frozen=True)
class TimeoutSettings:
    connect_ms: int = setting(3000, 10, 600_000)
    client_header_ms: int = setting(10_000, 10, 600_000)  # first byte to end of request head
    idle_ms: int = setting(60_000, 10, 3_600_000)  # keep-alive wait for the next request
    backend_response_ms: int = setting(60_000, 10, 3_600_000)  # silence from a busy backend
    queue_ms: int = setting(5000, 1, 600_000)  # longest wait for a free max_conns slot
    tunnel_idle_ms: int = setting(3_600_000, 10, 86_400_000)  # a silent WebSocket tunnel ends


@dataclass(frozen=True)
class ProxyProtocolSettings:
    """HAProxy's PROXY protocol (lab.proxy_protocol): the client's address, told
    by the proxy in front. `accept`: every connection starts with a v1 or v2 header,
    believed only from the `trusted` networks (others are closed); the address in it
    is the client's for hashing, stickiness, X-Forwarded-For and the events.
    `send` (Layer 4): each backend connection starts with one, as HAProxy's send-proxy
    does, so the backend learns the client too (at Layer 7, X-Forwarded-For tells it)."""

    accept: bool = setting(False)
    trusted: str = setting("127.0.0.0/8, ::1/128")  # networks, comma-separated
    send: str = setting("off", choices=("off", "v1", "v2"))


@dataclass(frozen=True)
class UdpSettings:
    """Layer 4 UDP (mode udp): flows keyed by the client's address and port.

    A flow lives until idle_timeout_ms pass with no datagram either way (nginx's
    proxy_timeout, 10 min by default; AWS NLB's 120 s); the lab's default is short so a
    learner sees flows end. per_datagram balances every datagram on its own and ends its
    exchange at the first reply (nginx's `proxy_responses 1`, as for DNS). Past max_flows
    the flow idle the longest is evicted to make room.
    """

    idle_timeout_ms: int = setting(10_000, 10, 3_600_000)
    per_datagram: bool = setting(False)
    max_flows: int = setting(10_000, 1, 100_000)


@dataclass(frozen=True)
class TlsSettings:
    """HTTPS. `mode` "terminate" (Layer 7): the balancer decrypts with `certificate` and
    `key` (PEM files), routes on everything Layer 7 sees and speaks plain HTTP to the
    backends, or TLS again with `upstream` (verified against `upstream_ca`).
    "passthrough" (Layer 4): the balancer reads only the ClientHello's SNI name, routes on
    it and pipes the encrypted bytes untouched; a hello without SNI goes to
    `no_sni_pool`, or is closed when that is "". "off": plain HTTP or TCP."""

    mode: str = setting("off", choices=("off", "terminate", "passthrough"))
    certificate: str = setting("")
    key: str = setting("")
    min_version: str = setting("1.2", choices=("1.2", "1.3"))
    upstream: bool = setting(False)
    upstream_ca: str = setting("")
    no_sni_pool: str = setting("")


SECTIONS: dict[str, type] = {
    "health": HealthSettings,
    "passive": PassiveSettings,
    "retries": RetrySettings,
    "sticky": StickySettings,
    "timeouts": TimeoutSettings,
    "proxy_protocol": ProxyProtocolSettings,
    "udp": UdpSettings,
    "tls": TlsSettings,
}
COOKIE_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")


def parse_section(name: str, data: object, base: Any) -> Any:
    """Validate a (partial) table over `base`; raise ConfigError naming the bad key."""
    if not isinstance(data, dict):
        raise ConfigError(name, f"expected a table of settings, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(base)}
    changes = {}
    for key, value in data.items():
        spec = fields.get(key)
        if spec is None:
            raise ConfigError(f"{name}.{key}", f"unknown setting; known: {', '.join(fields)}")
        changes[key] = check_value(f"{name}.{key}", value, spec.default, spec.metadata)
    section = dataclasses.replace(base, **changes)
    _check_section(name, section)
    return section


def check_value(where: str, value: object, default: object, rule: dict) -> Any:
    """One value, of the same kind as the default and within the field's limits."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(where, f"expected true or false, got {shown(value)}")
        return value
    if isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(where, f"expected a number, got {shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):  # int() of these raises
            raise ConfigError(where, f"expected a finite number, got {value!r}")
        if isinstance(default, int) and value != int(value):
            raise ConfigError(where, f"expected a whole number, got {value!r}")
        low, high = rule.get("low"), rule.get("high")
        # Compared before converting: float() of a 400-digit whole number overflows.
        if low is not None and high is not None and not low <= value <= high:
            raise ConfigError(where, f"must be {low:g}-{high:g}, got {shown(value)}")
        return int(value) if isinstance(default, int) else float(value)
    if not isinstance(value, str):
        raise ConfigError(where, f"expected text, got {shown(value)}")
    choices = rule.get("choices")
    if choices and value not in choices:
        names = ", ".join(repr(c) for c in choices if c)
        raise ConfigError(where, f"must be one of {names}; got {shown(value)}")
    return value


def _check_section(name: str, section: Any) -> None:
    path = getattr(section, "path", "/")
    if isinstance(section, HealthSettings) and (
        not path.startswith("/") or any(c in path for c in " \r\n")
    ):
        raise ConfigError("health.path", f"expected a path like /health, got {shown(path)}")
    if isinstance(section, ProxyProtocolSettings):
        for network in trusted_networks(section.trusted):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ConfigError(
                    "proxy_protocol.trusted",
                    f"expected networks like 127.0.0.0/8, ::1 (comma-separated), got {network!r}",
                ) from None
    if isinstance(section, StickySettings):
        cookie = section.cookie
        if not cookie or len(cookie) > 64 or not set(cookie) <= COOKIE_NAME_CHARS:
            raise ConfigError(
                "sticky.cookie", f"cookie names are 1-64 of A-Z a-z 0-9 _ - ., got {cookie!r}"
            )


def trusted_networks(text: str) -> list[str]:
    """proxy_protocol.trusted as a list: '127.0.0.0/8, ::1' -> ['127.0.0.0/8', '::1']."""
    return [part.strip() for part in text.split(",") if part.strip()]


def section_json(section: Any) -> dict:
    return dataclasses.asdict(section)
