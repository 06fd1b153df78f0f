"""Routing rules: an ordered list that sends matching requests to a named pool.

A rule matches when every condition it gives holds (HAProxy's `acl` plus
`use_backend ... if`). The first matching rule wins; a request no rule matches
goes to the default pool. Rules read the path, host, headers, cookies and
method, which only exist at Layer 7: asking for them at Layer 4 is a config
error, because that is the lesson. The one exception is TLS passthrough, where
a Layer 4 balancer reads the ClientHello's server name (SNI) and nothing else:
there an `sni` rule, or a `host` rule, matches that name (nginx's ssl_preread
with a `map $ssl_preread_server_name`, HAProxy's `req.ssl_sni`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.balancer.algorithms import RequestInfo
from lab.balancer.settings import ConfigError, shown, unique_name

DEFAULT_POOL = "default"
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")  # an HTTP header name or method
CONDITIONS = ("path_prefix", "host", "header", "cookie", "method", "sni")
# What each Layer 7 condition reads, for refusing it where the bytes are encrypted.
SEES = {"path_prefix": "the path", "header": "headers", "cookie": "cookies", "method": "the method"}
NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")


@dataclass(frozen=True)
class PoolSpec:
    """A named group of backends with its own algorithm (None: the top-level one)."""

    name: str
    backends: tuple[str, ...]
    algorithm: str | None = None
    hash_key: str | None = None

    def as_json(self) -> dict:
        data: dict = {"name": self.name, "backends": list(self.backends)}
        if self.algorithm:
            data["algorithm"] = self.algorithm
        if self.hash_key:
            data["hash_key"] = self.hash_key
        return data


@dataclass(frozen=True)
class Rule:
    name: str
    pool: str
    path_prefix: str | None = None
    host: str | None = None  # compared without case and without a port
    header: tuple[str, str | None] | None = None  # (lower-case name, value; None = present)
    cookie: tuple[str, str | None] | None = None  # (name, value; None = present)
    method: str | None = None
    sni: str | None = None  # a server name, or "*.suffix" for every name under suffix

    def matches(self, request: RequestInfo) -> bool:
        if self.sni is not None and not sni_matches(self.sni, request.sni):
            return False
        if self.path_prefix is not None and not request.path.startswith(self.path_prefix):
            return False
        if self.method is not None and request.method != self.method:
            return False
        headers = request.headers or {}
        if self.host is not None and bare_host(headers.get("host", "")) != self.host:
            return False
        if self.header is not None:
            name, value = self.header
            got = headers.get(name)
            if got is None or (value is not None and got.strip() != value):
                return False
        if self.cookie is not None:
            name, value = self.cookie
            got = (request.cookies or {}).get(name)
            if got is None or (value is not None and got != value):
                return False
        return True

    def describe(self) -> str:
        """The conditions in words, for reasons: 'path starts with /api and method is GET'."""
        parts = []
        if self.path_prefix is not None:
            parts.append(f"path starts with {self.path_prefix}")
        if self.host is not None:
            parts.append(f"host is {self.host}")
        if self.header is not None:
            name, value = self.header
            parts.append(f"header {name} is {value}" if value is not None else f"has header {name}")
        if self.cookie is not None:
            name, value = self.cookie
            parts.append(f"cookie {name} is {value}" if value is not None else f"has cookie {name}")
        if self.method is not None:
            parts.append(f"method is {self.method}")
        if self.sni is not None:
            parts.append(f"sni is {self.sni}")
        return " and ".join(parts)

    def matches_sni(self, name: str) -> bool:
        """At Layer 4 passthrough the SNI name is all there is: `sni` and `host` match it."""
        if self.sni is not None and not sni_matches(self.sni, name):
            return False
        return self.host is None or self.host == name

    def as_json(self) -> dict:
        data: dict = {"name": self.name, "pool": self.pool}
        if self.path_prefix is not None:
            data["path_prefix"] = self.path_prefix
        if self.host is not None:
            data["host"] = self.host
        if self.header is not None:
            data["header"] = _pair_text(self.header, ": ")
        if self.cookie is not None:
            data["cookie"] = _pair_text(self.cookie, "=")
        if self.method is not None:
            data["method"] = self.method
        if self.sni is not None:
            data["sni"] = self.sni
        return data

    def layer_7_only(self) -> str | None:
        """The first condition a Layer 4 balancer cannot see, if any (see SEES)."""
        for key, sees in SEES.items():
            if getattr(self, key) is not None:
                return sees
        return None


def sni_matches(pattern: str, name: str | None) -> bool:
    """'shop.lab.test' matches itself; '*.lab.test' every name under lab.test, not lab.test."""
    if name is None:
        return False
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern


def bare_host(text: str) -> str:
    """'Shop.Example:8080' -> 'shop.example'; '[::1]:80' -> '[::1]'."""
    name, sep, port = text.rpartition(":")
    if sep and port.isdigit() and not name.endswith(":"):
        text = name
    return text.strip().lower()


def _pair_text(pair: tuple[str, str | None], sep: str) -> str:
    return pair[0] if pair[1] is None else f"{pair[0]}{sep}{pair[1]}"


def match(rules: tuple[Rule, ...], request: RequestInfo) -> Rule | None:
    for rule in rules:
        if rule.matches(request):
            return rule
    return None


def match_sni(rules: tuple[Rule, ...], name: str | None) -> Rule | None:
    """The first rule the SNI name satisfies, at Layer 4 passthrough; None without a name."""
    if name is None:
        return None
    for rule in rules:
        if rule.matches_sni(name):
            return rule
    return None


# -- parsing ---------------------------------------------------------------------------


def parse_pools(items: object, backend_names: set[str], check_algorithm) -> tuple[PoolSpec, ...]:
    if not isinstance(items, list):
        raise ConfigError("pools", 'expected a list like [{"name": "api", "backends": ["b1"]}]')
    pools: list[PoolSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"pools[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(where, "expected a table with name and backends")
        unknown = set(item) - {"name", "backends", "algorithm", "hash_key"}
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}", "unknown pool setting")
        name = unique_name(item.get("name"), where, seen, "pool")
        members = item.get("backends")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise ConfigError(f"{where}.backends", "expected a list of backend names")
        for member in members:
            if member not in backend_names:
                raise ConfigError(f"{where}.backends", f"no backend named {member!r}")
        if len(set(members)) != len(members):
            raise ConfigError(f"{where}.backends", "a backend is listed twice")
        algorithm = item.get("algorithm")
        hash_key = item.get("hash_key")
        if algorithm is not None or hash_key is not None:
            check_algorithm(f"{where}", algorithm, hash_key)
        pools.append(PoolSpec(name, tuple(members), algorithm, hash_key))
    return tuple(pools)


def parse_rules(items: object, pool_names: set[str]) -> tuple[Rule, ...]:
    if not isinstance(items, list):
        raise ConfigError("rules", 'expected a list like [{"path_prefix": "/api", "pool": "api"}]')
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"rules[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(where, "expected a table with conditions and a pool")
        unknown = set(item) - {"name", "pool", *CONDITIONS}
        if unknown:
            raise ConfigError(
                f"{where}.{sorted(unknown)[0]}",
                f"unknown rule setting; conditions are {', '.join(CONDITIONS)}",
            )
        name = unique_name(item.get("name", f"rule{i + 1}"), where, seen, "rule")
        pool = item.get("pool")
        if not isinstance(pool, str) or pool not in pool_names:  # a list is not hashable
            known = ", ".join(sorted(pool_names))
            raise ConfigError(f"{where}.pool", f"no pool named {shown(pool)} (pools: {known})")
        if not any(key in item for key in CONDITIONS):
            raise ConfigError(where, f"a rule needs a condition: {', '.join(CONDITIONS)}")
        rules.append(
            Rule(
                name,
                pool,
                path_prefix=_path(item.get("path_prefix"), f"{where}.path_prefix"),
                host=_host(item.get("host"), f"{where}.host"),
                header=_pair(item.get("header"), ":", f"{where}.header", lower=True),
                cookie=_pair(item.get("cookie"), "=", f"{where}.cookie"),
                method=_method(item.get("method"), f"{where}.method"),
                sni=_sni(item.get("sni"), f"{where}.sni"),
            )
        )
    return tuple(rules)


def _path(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/") or any(c in value for c in " \r\n"):
        raise ConfigError(where, f"expected a path starting with /, got {value!r}")
    return value


def _host(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or any(c in value for c in " /\r\n"):
        raise ConfigError(where, f"expected a host name like shop.example, got {value!r}")
    return value.lower()


def _sni(value: object, where: str) -> str | None:
    if value is None:
        return None
    text = value.lower() if isinstance(value, str) else ""
    if not NAME.match(text.removeprefix("*.")):
        raise ConfigError(
            where, f"expected a server name like shop.lab.test or *.lab.test, got {shown(value)}"
        )
    return text


def _pair(value: object, sep: str, where: str, lower: bool = False) -> tuple | None:
    """'X-Canary: 1' -> ('x-canary', '1'); 'X-Canary' -> ('x-canary', None)."""
    if value is None:
        return None
    example = "X-Canary: 1" if sep == ":" else "canary=1"
    if not isinstance(value, str):
        raise ConfigError(where, f"expected text like {example!r}, got {value!r}")
    name, found, wanted = value.partition(sep)
    name = name.strip()
    if not TOKEN.match(name):
        raise ConfigError(where, f"expected text like {example!r}, got {value!r}")
    return (name.lower() if lower else name, wanted.strip() if found else None)


def _method(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not TOKEN.match(value):
        raise ConfigError(where, f"expected a method like GET or POST, got {value!r}")
    return value.upper()
