"""What the nginx and HAProxy snippets share: the default timeouts, the hash key, the retry budget.

A snippet writes a timeout only where the lab's differs from its default
(DEFAULT_TIMEOUTS); `hash_source` is a consistent-hash key as each peer reads
it; `budget_note` says where the lab's retry budget lives, as neither peer has one.
lab.lessons.snippet_nginx and lab.lessons.snippet_haproxy use them.
"""

from __future__ import annotations

DEFAULT_TIMEOUTS = {
    "connect_ms": 3000,
    "client_header_ms": 10_000,
    "idle_ms": 60_000,
    "backend_response_ms": 60_000,
    "queue_ms": 5000,
}


def hash_source(hash_key: str, mode: str) -> tuple[str, str]:
    """(nginx variable, HAProxy balance expression) for a consistent-hash key."""
    if mode == "udp":  # the lab hashes a flow's key: the client's address and port
        return "$remote_addr:$remote_port", "source"
    if mode == "tcp" or hash_key == "client-ip":
        return "$remote_addr", "source"
    if hash_key == "path":
        return "$uri", "uri"
    kind, _, name = hash_key.partition(":")
    if kind == "header":
        return "$http_" + name.lower().replace("-", "_"), f"hdr({name})"
    return "$cookie_" + name, f"hash req.cook({name})"


def budget_note(retries: dict, indent: str) -> list[str]:
    """The lab's retry budget, which neither nginx nor HAProxy has: say where it lives."""
    percent = retries.get("budget_percent", 0)
    if not percent:
        return []
    minimum = retries.get("min_per_s", 10)
    return [
        f"{indent}# retry budget ({percent:g}% of requests + {minimum:g}/s): no such setting "
        "here; Envoy's retry_budget, Linkerd's retryRatio",
    ]
