"""The same setting in the real world: nginx `upstream` blocks and HAProxy `backend` sections.

Generated from a balancer config (a lesson's, or the running balancer's /state),
never pasted, so what the page shows follows what the lab does. Where a peer
has no exact equivalent, the snippet says so in a comment and uses the
nearest thing it has (see the source notes in the README's table): open-source
nginx has no active health checks (`health_check`) or slow start (NGINX Plus
has them), and routing rules become a `map` there and `acl` + `use_backend`
lines in HAProxy, with one upstream or backend per pool (lab.lessons.snippet_rules).

Each peer's snippet is written by its own module (lab.lessons.snippet_nginx,
lab.lessons.snippet_haproxy); `snippets` gives both. `nginx_config` and
`haproxy_config` (lab.lessons.snippet_check) wrap a snippet into a whole file that
`nginx -t` and `haproxy -c` accept, which is how the tests check them;
`for_nginx_version` (lab.lessons.snippet_nginx) first comments out the lines the
installed nginx is too old to know, so the check covers exactly what that version
accepts.
"""

from __future__ import annotations

from typing import Any

from lab.lessons.snippet_haproxy import haproxy_snippet
from lab.lessons.snippet_nginx import nginx_snippet


def snippets(config: dict) -> dict[str, str]:
    """Both snippets for one balancer config (or the balancer's /state)."""
    return {"nginx": nginx_snippet(config), "haproxy": haproxy_snippet(config)}


SETTINGS = (
    "health", "passive", "retries", "sticky", "timeouts", "slow_start_s", "udp", "proxy_protocol",
    "tls",
)  # fmt: skip


def from_state(state: dict[str, Any]) -> dict[str, Any]:
    """The parts of a balancer's /state the snippets read."""
    keep = ("name", "address", "weight", "backup", "max_conns")
    tables = state.get("settings") if isinstance(state.get("settings"), dict) else state
    config = {
        **{k: state[k] for k in ("mode", "algorithm", "hash_key", "listen") if k in state},
        **{k: tables[k] for k in SETTINGS if k in tables},
        "backends": [{k: b[k] for k in keep if k in b} for b in state.get("backends", [])],
    }
    if state.get("rules"):
        config["rules"] = state["rules"]
        config["pools"] = [
            {"name": p["name"], "backends": p["backends"], "algorithm": p.get("algorithm")}
            for p in state.get("pools", [])
        ]
    return config
