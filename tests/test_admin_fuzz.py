"""A few hundred random admin API requests: every one answered, none a 500, and the balancer
still routes afterwards. Seeded, so a failure replays exactly (the seed is in its message)."""

from __future__ import annotations

import json
import random
import socket
import time

import httptools
from conftest import Http, split, wait_for

SEED = 12
REQUESTS = 400
NASTY_NUMBERS = [
    0, -1, 1, 2, 3, 7, 100, 256, 257, 65535, 65536, 10**6, 10**18, 10**30, -(10**400),
    0.5, -0.0, 2.0, 1e-300, 1e308, True, False, None,
]  # fmt: skip
NASTY_TEXT = [
    "", " ", "\u00b2", "-\u00b2", "\u0663", "\u00bd", "1e3", "0x10", " 3 ", "-", "3.0", "nan",
    "inf", "b1", "b9", "default", "x" * 300, "127.0.0.1:\u00b2", "127.0.0.1:0", "127.0.0.1:99999",
    "[::1]:80", ":80", "host:", "a:b:c", "\r\n", "\x00", "round-robin", "random", "http", "tcp",
    "/health", "/a b", "header:X-User", "cookie:", "\ud7ff", "\u202e",
]  # fmt: skip
NON_FINITE = ["Infinity", "-Infinity", "NaN", "1e400", "-1e999"]  # raw JSON tokens
KEYS = [
    "mode", "algorithm", "hash_key", "backends", "weights", "pools", "rules", "health",
    "passive", "retries", "sticky", "timeouts", "panic_threshold", "slow_start_s", "max_queue",
    "listen", "admin", "seed", "events_queue", "nope",
    "name", "address", "weight", "backup", "max_conns", "draining", "pool", "path_prefix",
    "host", "header", "cookie", "method", "enabled", "type", "path", "interval_ms",
    "timeout_ms", "rise", "fall", "max_fails", "fail_timeout_s", "on_5xx", "tries",
    "non_idempotent", "expire_s", "connect_ms", "client_header_ms", "idle_ms",
    "backend_response_ms", "queue_ms", "b1", "b2", "b3",
]  # fmt: skip
PATHS = [
    "/config", "/config", "/config", "/backends", "/backends", "/backends/b1", "/backends/b2",
    "/backends/zz", "/backends/", "/state", "/metrics", "/", "/reset", "/nope", "/config?x=1",
    "/backends/b1/x", "//config", "/%2e%2e/config", "/state#frag", "*", "/events",
]  # fmt: skip
METHODS = ["PUT", "POST", "DELETE", "GET", "HEAD", "PATCH", "OPTIONS"]
# Most requests go where a body is read, so most of them reach the config's validation.
ENDPOINTS = [("PUT", "/config")] * 6 + [
    ("POST", "/backends"), ("POST", "/backends"), ("PUT", "/backends/b1"), ("PUT", "/backends/b2"),
    ("DELETE", "/backends/b3"), ("GET", "/state"), ("GET", "/metrics"), ("POST", "/reset"),
]  # fmt: skip


def value(rng: random.Random, depth: int = 0) -> str:
    """A random JSON text, mostly shaped like a config, often wrong in one place."""
    roll = rng.random()
    if depth > 4 or roll < 0.35:
        pick = rng.random()
        if pick < 0.4:
            return json.dumps(rng.choice(NASTY_NUMBERS))
        if pick < 0.85:
            return json.dumps(rng.choice(NASTY_TEXT))
        return rng.choice(NON_FINITE)
    if roll < 0.8:
        keys = rng.sample(KEYS, rng.randint(0, 4))
        return "{" + ", ".join(f"{json.dumps(k)}: {value(rng, depth + 1)}" for k in keys) + "}"
    return "[" + ", ".join(value(rng, depth + 1) for _ in range(rng.randint(0, 4))) + "]"


def body(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.75:
        return value(rng).encode()
    if roll < 0.82:
        text = value(rng).encode()
        return text[: rng.randint(0, len(text))]  # cut short
    if roll < 0.88:
        depth = rng.choice([33, 500, 5000, 100_000])
        return b"[" * depth + b"]" * depth
    if roll < 0.94:
        return rng.randbytes(rng.randint(1, 200))
    return b""


def request(rng: random.Random) -> bytes:
    if rng.random() < 0.75:
        method, path = rng.choice(ENDPOINTS)
    else:
        method, path = rng.choice(METHODS), rng.choice(PATHS)
    if method == "GET" and path == "/events":
        path = "/state"  # a stream never ends; it has its own tests
    payload = body(rng) if method in ("PUT", "POST", "PATCH", "DELETE") else b""
    headers = [b"Host: admin"]
    roll = rng.random()
    if roll < 0.1:
        headers.append(b"Expect: 100-continue")
    elif roll < 0.15:
        headers += [b"Connection: Upgrade", b"Upgrade: websocket"]
    elif roll < 0.2:
        headers.append(b"Content-Type: text/\xff\x00plain")
    elif roll < 0.25:
        headers.append(b"X-" + rng.randbytes(4).hex().encode() + b": " + b"v" * 2000)
    if roll > 0.9 and payload:  # the same body, chunked
        headers.append(b"Transfer-Encoding: chunked")
        payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    else:
        headers.append(b"Content-Length: %d" % len(payload))
    head = b"%s %s HTTP/1.1\r\n" % (method.encode(), path.encode()) + b"\r\n".join(headers)
    return head + b"\r\n\r\n" + payload


class Reply:
    """Collects one response through httptools."""

    def __init__(self, head_only: bool = False) -> None:
        self.head_only = head_only  # the answer to a HEAD ends with its head
        self.complete = False
        self.body = b""

    def on_headers_complete(self) -> None:
        self.complete = self.head_only

    def on_body(self, chunk: bytes) -> None:
        self.body += chunk

    def on_message_complete(self) -> None:
        self.complete = True


def send(address: str, data: bytes) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body); fails on a hang or no answer."""
    with socket.create_connection(split(address), timeout=3) as sock:
        sock.sendall(data)
        reply = Reply(head_only=data.startswith(b"HEAD "))
        parser = httptools.HttpResponseParser(reply)
        while True:
            chunk = sock.recv(65536)
            assert chunk, f"closed without an answer to {data[:120]!r}"
            parser.feed_data(chunk)
            if reply.complete and parser.get_status_code() != 100:
                return parser.get_status_code(), reply.body
            if reply.complete:  # 100 Continue: the real answer follows
                reply = Reply(head_only=data.startswith(b"HEAD "))
                parser = httptools.HttpResponseParser(reply)


def test_random_admin_requests_are_all_answered_and_none_is_a_500(lab):
    lab.start_balancer()
    good = {
        "mode": "http",
        "algorithm": "round-robin",
        "backends": [b | {"weight": 1} for b in _backends(lab)],
        "pools": [],
        "rules": [],
        "health": {"enabled": False},
        "sticky": {"mode": "off"},
        "passive": {"max_fails": 0},
        "retries": {"tries": 3},
        "timeouts": {"connect_ms": 3000, "queue_ms": 5000, "idle_ms": 60000},
        "panic_threshold": 0,
        "max_queue": 100,
        "slow_start_s": 0,
    }
    rng = random.Random(SEED)
    statuses: dict[int, int] = {}
    started = time.monotonic()
    for i in range(REQUESTS):
        data = request(rng)
        status, reply = send(lab.admin_address, data)
        statuses[status] = statuses.get(status, 0) + 1
        assert status != 500, f"seed {SEED} request {i}: {data[:200]!r} -> {reply[:300]!r}"
        if status >= 400 and reply:  # every refusal is the one error shape
            document = json.loads(reply)
            assert set(document) == {"error", "field"} and document["error"], (data[:200], reply)
    elapsed = time.monotonic() - started
    assert elapsed < 25, f"{REQUESTS} requests took {elapsed:.1f}s"
    print(f"statuses {sorted(statuses.items())} in {elapsed:.2f}s")
    assert statuses.get(400, 0) > REQUESTS / 4 and statuses.get(200, 0) > 10, statuses

    balancer = lab.supervisor.children["balancer"]
    assert balancer.alive(), "the balancer process died"
    assert "Traceback" not in "".join(balancer.output)
    lab.configure(**good)  # whatever the fuzz changed, a good config puts it right
    client = Http(lab.listen)
    seen = {client.get(f"/after/{n}")[1]["x-backend"] for n in range(6)}
    client.close()
    assert seen == {"b1", "b2", "b3"}
    wait_for(lambda: all(b["active"] == 0 for b in lab.state()["backends"]), what="no active")


def _backends(lab) -> list[dict]:
    return [{"name": name, "address": address} for name, address in lab.backends.items()]
