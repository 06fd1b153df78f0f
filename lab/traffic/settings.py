"""What a learner can steer while traffic runs (its settings), and the rules that keep them sane.

Validation is pure and shared: the command line, `PUT /config` and the tests
all go through `Settings.updated`, which checks a whole change before any of
it takes effect.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lab.address import join_address, split_address
from lab.errors import FieldError

MAX_RATE = 5000.0
MAX_CLIENTS = 64  # client k sends from 127.0.0.(k+1): 64 fits well inside 127/8
MAX_SEND = 1000
MAX_SESSION = 1000  # datagrams on one source port before a fresh one
MAX_CONNECTIONS = 6  # per client, as browsers allow per host
MAX_HEAVY_MS = 10_000.0  # a heavy request stays under the clients' 10 s timeout
PROTOCOLS = ("http", "udp")
# With two balancers on the same backends (--split): how the clients' requests are shared
# out. "client": each client always to the same balancer, as DNS does (a resolver caches one
# answer). "request": a client's requests take the balancers in turn, as a router's ECMP hash
# sends a client's connections (each from a new source port) to any of them.
SPREADS = ("client", "request")
MAX_SNI_NAMES = 16
MAX_SNI_WEIGHT = 100
# A DNS name as SNI carries it: labels of letters, digits and hyphens (no IP address: RFC 6066
# says a client sends no SNI for one).
HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"
)


class SettingError(FieldError):
    """A value that cannot be used; `field` names the setting."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the traffic goes: http://HOST:PORT[/prefix]."""

    host: str
    port: int
    prefix: str = ""  # prepended to every path of the mix, without a trailing slash
    https: bool = False  # given as https://: the generator starts with `tls` on

    @property
    def authority(self) -> str:
        return join_address(self.host, self.port)

    @property
    def url(self) -> str:
        return self.url_for(self.https)

    def url_for(self, tls: bool) -> str:
        return f"{'https' if tls else 'http'}://{self.authority}{self.prefix or '/'}"


@dataclass(frozen=True, slots=True)
class Settings:
    """The knobs of a running traffic generator."""

    rate: float = 5.0  # requests per second, on average; 0 = none (send-N still works)
    clients: int = 4
    keep_alive: bool = True
    paused: bool = False
    # "udp": each client sends datagrams to the target's host and port instead of requests,
    # udp_session of them from one source port before a fresh one (0: never a fresh one).
    protocol: str = "http"
    udp_session: int = 5
    # Connections a client may hold at once: 6 as a browser's HTTP/1.1, or 1 as an HTTP/2 or
    # gRPC client that keeps one connection for everything (its requests wait their turn on it).
    connections: int = MAX_CONNECTIONS
    spread: str = "client"
    # HTTPS (lab.traffic.tls): verified against the CA file the generator was started with;
    # each client asks for an SNI name from the mix ({} = the target's host); resumption:
    # offer the last connection's TLS session, or pay for a full handshake every time.
    tls: bool = False
    sni_mix: dict[str, int] = dataclasses.field(default_factory=dict)
    resumption: bool = True
    # Requests of different cost: this share (0-1) asks for /report, which takes the
    # backend heavy_ms longer than any other page (the toy backend's ?delay_ms).
    heavy_share: float = 0.0
    heavy_ms: float = 500.0

    def updated(self, changes: Any) -> Settings:
        """A copy with `changes` (a partial mapping) applied; SettingError if any of it is bad."""
        if not isinstance(changes, dict):
            raise SettingError("body", 'expected a JSON object, e.g. {"rate": 20}')
        known = [f.name for f in dataclasses.fields(self)]
        clean: dict[str, Any] = {}
        for field, value in changes.items():
            if field not in known:
                raise SettingError(
                    field, f"unknown setting {field!r}; settings are {', '.join(known)}"
                )
            clean[field] = _CHECKS[field](field, value)
        return dataclasses.replace(self, **clean)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def rate(field: str, value: Any) -> float:
    """Requests per second: a number from 0 to MAX_RATE."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SettingError(field, f"{field} must be a number, got {value!r}")
    if not 0 <= value <= MAX_RATE:
        raise SettingError(field, f"{field} must be between 0 and {MAX_RATE:g}, got {value!r}")
    return float(value)


def whole(low: int, high: int):
    """A check for a whole number from `low` to `high` (2.0 counts, 2.5 and true do not)."""

    def check(field: str, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SettingError(field, f"{field} must be a whole number {low}-{high}, got {value!r}")
        return value

    return check


def flag(field: str, value: Any) -> bool:
    """true or false, nothing else (no 0/1, no strings)."""
    if not isinstance(value, bool):
        raise SettingError(field, f"{field} must be true or false, got {value!r}")
    return value


def spread(field: str, value: Any) -> str:
    if value not in SPREADS:
        raise SettingError(field, f"{field} must be one of {', '.join(SPREADS)}, got {value!r}")
    return value


def protocol(field: str, value: Any) -> str:
    if value not in PROTOCOLS:
        raise SettingError(field, f"{field} must be one of {', '.join(PROTOCOLS)}, got {value!r}")
    return value


def parse_sni_mix(field: str, value: Any) -> dict[str, int]:
    """{"name": weight}, from that mapping or from text like "shop.lab.test=3,api.lab.test=1".

    A name without a weight counts 1; an empty mix means the target's own host name.
    """
    if isinstance(value, str):
        value = _mix_from_text(field, value)
    if not isinstance(value, dict):
        raise SettingError(field, f'{field} must be like "shop.lab.test=3,api.lab.test=1"')
    if len(value) > MAX_SNI_NAMES:
        raise SettingError(field, f"{field} takes at most {MAX_SNI_NAMES} names, got {len(value)}")
    mix: dict[str, int] = {}
    for name, weight in value.items():
        if not isinstance(name, str) or not HOST_NAME.match(name.lower()):
            raise SettingError(field, f"{field}: {name!r} is not a host name (SNI names a host)")
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int)
            or not 1 <= weight <= MAX_SNI_WEIGHT
        ):
            raise SettingError(
                field,
                f"{field}: the weight of {name} must be a whole number 1-{MAX_SNI_WEIGHT}, "
                f"got {weight!r}",
            )
        mix[name.lower()] = weight
    return mix


def _mix_from_text(field: str, text: str) -> dict[str, Any]:
    mix: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, equals, weight = part.partition("=")
        if not equals:
            mix[name.strip()] = 1
        elif weight.strip().isascii() and weight.strip().isdigit():
            mix[name.strip()] = int(weight)
        else:
            raise SettingError(field, f"{field}: the weight in {part!r} must be a whole number")
    return mix


def share(field: str, value: Any) -> float:
    """A fraction of the requests: a number from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise SettingError(field, f"{field} must be a number from 0 to 1, got {value!r}")
    return float(value)


def milliseconds(field: str, value: Any) -> float:
    """How much longer a heavy request takes: 0 to MAX_HEAVY_MS."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingError(field, f"{field} must be a number of ms, got {value!r}")
    if not 0 <= value <= MAX_HEAVY_MS:
        raise SettingError(field, f"{field} must be 0-{MAX_HEAVY_MS:g} ms, got {value!r}")
    return float(value)


client_count = whole(1, MAX_CLIENTS)
send_count = whole(1, MAX_SEND)
session_length = whole(0, MAX_SESSION)
connection_count = whole(1, MAX_CONNECTIONS)

_CHECKS = {
    "rate": rate,
    "clients": client_count,
    "keep_alive": flag,
    "paused": flag,
    "protocol": protocol,
    "udp_session": session_length,
    "connections": connection_count,
    "spread": spread,
    "tls": flag,
    "sni_mix": parse_sni_mix,
    "resumption": flag,
    "heavy_share": share,
    "heavy_ms": milliseconds,
}


def parse_target(text: str) -> Target:
    """http://HOST:PORT[/path] or https://..., nothing more (no user, query or fragment).

    The scheme is the caller's to read (`target_scheme`): https turns `tls` on.
    """
    field = "target"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise SettingError(field, f"not a URL: {text!r} ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise SettingError(field, f"target must start with http:// or https://, got {text!r}")
    if not parts.hostname or port is None or parts.username is not None:
        raise SettingError(field, f"target must be {parts.scheme}://HOST:PORT[/path], got {text!r}")
    if parts.query or parts.fragment:
        raise SettingError(field, f"target takes no query or fragment, got {text!r}")
    if port == 0:
        raise SettingError(field, f"target port must be 1-65535, got {text!r}")
    if any(c <= " " or c == "\x7f" for c in parts.path):
        raise SettingError(
            field, f"target path must not hold spaces or control characters: {text!r}"
        )
    return Target(parts.hostname, port, parts.path.rstrip("/"), parts.scheme == "https")


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT for the control API; port 0 picks a free one."""
    try:
        return split_address(text)
    except ValueError as exc:
        raise SettingError("control", str(exc)) from None


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
