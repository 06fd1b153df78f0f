"""Pools and Layer 7 routing rules as nginx and HAProxy write them.

Each pool becomes its own nginx `upstream` / HAProxy `backend` (the default
pool is `lab`, pool api is `lab_api`). The rules keep the lab's meaning, first
match wins:

- HAProxy: one `acl` per condition and one `use_backend ... if` per rule, in
  order, in a `frontend`; a rule's conditions all hold (`if a b`).
- nginx: `location` blocks would match the longest prefix, not the first rule,
  and cannot read headers or cookies; so a `map` builds one key from everything
  the rules read (`$request_uri|$http_x_canary`) and tries one regular expression per
  rule, in order (nginx tries a map's regular expressions in the order written).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UPSTREAM = "lab"
POOL_VARIABLE = "$lab_pool"
# The client's address appended to any X-Forwarded-For it came with, as the lab does.
FORWARDED_FOR = "$proxy_add_x_forwarded_for"
# What a rule reads, in the order the nginx map's key lists them.
KINDS = ("path_prefix", "host", "header", "cookie", "method")
ANY = "[^|]*"


@dataclass(frozen=True)
class Pool:
    name: str
    backends: list[dict]
    algorithm: str
    hash_key: str

    @property
    def upstream(self) -> str:
        return UPSTREAM if self.name == "default" else f"{UPSTREAM}_{self.name}"


def time_text(ms: int) -> str:
    """A duration as nginx and HAProxy both write it: 30m, 10s or 200ms."""
    ms = int(ms)
    if ms >= 60_000 and ms % 60_000 == 0:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def pools_of(config: dict) -> list[Pool]:
    """The default pool first (every backend, unless a pool called default is listed), then
    the named pools, but only when rules can send requests to them."""
    algorithm = config.get("algorithm", "round-robin")
    hash_key = config.get("hash_key", "client-ip")
    backends = config.get("backends", [])
    by_name = {b["name"]: b for b in backends}
    named = {p["name"]: p for p in config.get("pools") or []}

    def pool(name: str, members: list[dict], spec: dict) -> Pool:
        return Pool(
            name, members, spec.get("algorithm") or algorithm, spec.get("hash_key") or hash_key
        )

    default = named.get("default", {})
    members = [by_name[m] for m in default["backends"] if m in by_name] if default else backends
    pools = [pool("default", members, default)]
    rules = config.get("rules") or []
    # At Layer 4 only an `sni` rule (TLS passthrough, lab.lessons.snippet_tls) can route.
    if rules and (config.get("mode", "http") != "tcp" or any(r.get("sni") for r in rules)):
        for name, spec in named.items():
            if name != "default":
                pools.append(pool(name, [by_name[m] for m in spec["backends"]], spec))
    return pools


def named_rules(config: dict) -> list[dict]:
    """The rules, each with its name (the balancer calls an unnamed one rule1, rule2, ...)."""
    return [{"name": f"rule{i + 1}", **rule} for i, rule in enumerate(config.get("rules") or [])]


def _pair(text: str, sep: str) -> tuple[str, str | None]:
    """'X-Canary: 1' -> ('X-Canary', '1'); 'X-Canary' -> ('X-Canary', None)."""
    name, found, value = text.partition(sep)
    return name.strip(), value.strip() if found else None


def _target(rule: dict, pools: list[Pool]) -> str:
    upstream = {p.name: p.upstream for p in pools}
    return upstream.get(rule["pool"], f"{UPSTREAM}_{rule['pool']}")


def _describe(rule: dict) -> str:
    words = {"path_prefix": "path starts with", "host": "host is", "method": "method is"}
    parts = [f"{words[k]} {rule[k]}" for k in ("path_prefix", "host", "method") if k in rule]
    for kind in ("header", "cookie"):
        if kind in rule:
            name, value = _pair(rule[kind], ":" if kind == "header" else "=")
            parts.append(f"{kind} {name} is {value}" if value is not None else f"has {kind} {name}")
    return " and ".join(parts)


# -- nginx --------------------------------------------------------------------------------


def _nginx_variable(kind: str, rule: dict) -> str:
    if kind == "path_prefix":
        return "$request_uri"  # as the client sent it: the lab's rules read the raw path
    if kind == "host":
        return "$host"
    if kind == "method":
        return "$request_method"
    name, _ = _pair(rule[kind], ":" if kind == "header" else "=")
    if kind == "header":
        return "$http_" + name.lower().replace("-", "_")
    return "$cookie_" + name


def _nginx_pattern(kind: str, rule: dict) -> str:
    if kind == "path_prefix":
        return re.escape(rule[kind]) + ANY
    if kind in ("host", "method"):
        return re.escape(rule[kind].lower() if kind == "host" else rule[kind])
    _, value = _pair(rule[kind], ":" if kind == "header" else "=")
    return "[^|]+" if value is None else re.escape(value)


def nginx_router(rules: list[dict], pools: list[Pool], listen: str) -> list[str]:
    """A map from what the rules read to the pool's upstream, and the server that uses it."""
    key: list[str] = []  # one variable per thing read, in KINDS order
    for kind in KINDS:
        for rule in rules:
            if kind in rule and _nginx_variable(kind, rule) not in key:
                key.append(_nginx_variable(kind, rule))
    lines = [
        "# the rules, first match wins: a map tries its regular expressions in order",
        "# (location blocks would take the longest prefix instead); one key holds all they read",
    ]
    lines.append(f'map "{"|".join(key)}" {POOL_VARIABLE} {{')
    for rule in rules:
        pieces = [ANY] * len(key)
        for kind in KINDS:
            if kind in rule:
                pieces[key.index(_nginx_variable(kind, rule))] = _nginx_pattern(kind, rule)
        pattern = "~^" + r"\|".join(pieces) + "$"
        why = f"{rule['name']}: {_describe(rule)}"
        lines.append(f'    "{pattern}" {_target(rule, pools)};  # {why}')
    lines += [f"    default {UPSTREAM};", "}"]
    return [
        *lines,
        "server {",
        f"    listen {listen};",
        "    location / {",
        f"        proxy_pass http://{POOL_VARIABLE};  # the upstream the map chose",
        "        proxy_http_version 1.1;",
        f"        proxy_set_header X-Forwarded-For {FORWARDED_FOR};",
        "        proxy_set_header Upgrade $http_upgrade;  # WebSockets, as above",
        "        proxy_set_header Connection $connection_upgrade;",
        "    }",
        "}",
    ]


# -- HAProxy ------------------------------------------------------------------------------


def _haproxy_value(value: str) -> str:
    return f'"{value}"' if any(c in value for c in ' \t"\\#') else value


def _haproxy_acl(kind: str, rule: dict) -> str:
    if kind == "path_prefix":
        return f"path_beg {_haproxy_value(rule[kind])}"
    if kind == "host":
        return f"req.hdr(host),field(1,:) -m str -i {_haproxy_value(rule[kind].lower())}"
    if kind == "method":
        return f"method {rule[kind]}"
    name, value = _pair(rule[kind], ":" if kind == "header" else "=")
    fetch = f"req.hdr({name.lower()})" if kind == "header" else f"req.cook({name})"
    return f"{fetch} -m found" if value is None else f"{fetch} -m str {_haproxy_value(value)}"


def haproxy_frontend(rules: list[dict], pools: list[Pool], listen: str) -> list[str]:
    """The frontend that sends each request to the first matching rule's backend."""
    lines = ["frontend lab_in", f"    bind {listen}", "    mode http"]
    uses = []
    for rule in rules:
        kinds = [kind for kind in KINDS if kind in rule]
        names = []
        for kind in kinds:
            name = rule["name"] if len(kinds) == 1 else f"{rule['name']}_{kind}"
            lines.append(f"    acl {name} {_haproxy_acl(kind, rule)}")
            names.append(name)
        uses.append(f"    use_backend {_target(rule, pools)} if {' '.join(names)}")
    return [*lines, *uses, f"    default_backend {UPSTREAM}"]
