"""The balancer never crashes on bad input: fuzzed, dripped, abandoned or killed, it serves on."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import httptools
import pytest
from conftest import Http, split, wait_for

VALID = (
    b"GET /fuzz?q=1 HTTP/1.1\r\nHost: lab\r\nX-User: ana\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: lab\r\nContent-Length: 11\r\n\r\nhello world",
    b"POST /upload HTTP/1.1\r\nHost: lab\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
)
NASTY = (b"\r\n", b"\r\n\r\n", b":", b" ", b"\x00", b"\xff", b"9999999", b"-1", b"chunked", b"\n")


class Message:
    """httptools callbacks that only note whether one whole message went by."""

    complete = False

    def on_message_complete(self) -> None:
        self.complete = True


def exchange(address: str, data, timeout: float = 1.0, half_close: bool = True):
    """Send `data` (bytes, or pieces to write one by one); read one reply. Returns how it
    ended ("answered", "closed", "reset", "hang" or "garbled": not HTTP) and the reply."""
    sock = socket.create_connection(split(address), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = Message()
    parser = httptools.HttpResponseParser(message)
    chunks, ending = [], "closed"
    try:
        for piece in [data] if isinstance(data, bytes) else data:
            sock.sendall(piece)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        while not message.complete and (chunk := sock.recv(65536)):
            chunks.append(chunk)
            parser.feed_data(chunk)
        ending = "answered" if message.complete else "closed"
    except TimeoutError:
        ending = "hang"
    except (ConnectionResetError, BrokenPipeError):
        ending = "reset"
    except httptools.HttpParserError:
        ending = "garbled"
    finally:
        reset(sock)  # an RST, so the balancer learns at once that we are gone
    return ending, b"".join(chunks)


def request_state(data: bytes) -> str:
    """What llhttp makes of `data` alone: "complete", "bad", or "incomplete" (it wants more)."""
    message = Message()
    try:
        httptools.HttpRequestParser(message).feed_data(data)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return "bad"
    return "complete" if message.complete else "incomplete"


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def active(lab) -> list[int]:
    return [b["active"] for b in lab.state()["backends"]]


def assert_still_serving(lab) -> None:
    """Alive, routes a normal GET, and no request is left counted as active."""
    assert lab.supervisor.children["balancer"].alive(), "the balancer process died"
    status, headers, _ = Http(lab.listen).get("/after")
    assert status == 200 and headers["x-backend"] in lab.backends
    wait_for(lambda: active(lab) == [0] * len(active(lab)), timeout=3, what="active back to 0")


def assert_no_traceback(lab) -> None:
    balancer = lab.supervisor.children.get("balancer")
    output = "".join(balancer.output) if balancer else ""
    assert "Traceback" not in output, output


@pytest.fixture(autouse=True)
def clean_output(lab):
    """After each test: nothing in the balancer's output says it choked on an exception."""
    yield
    assert_no_traceback(lab)


class Events:
    """Collect GET /events lines on a thread."""

    def __init__(self, lab) -> None:
        self.got: list[dict] = []
        self.sock = socket.create_connection(split(lab.admin_address))
        self.sock.sendall(b"GET /events HTTP/1.1\r\nHost: admin\r\n\r\n")
        threading.Thread(target=self.read, daemon=True).start()
        wait_for(lambda: lab.state()["events"]["subscribers"] == 1, what="the /events reader")

    def read(self) -> None:
        buffer = b""
        while chunk := self.sock.recv(65536):
            *lines, buffer = (buffer + chunk).split(b"\n")
            self.got += [json.loads(line) for line in lines if line.startswith(b"{")]

    def done(self, **match) -> list[dict]:
        done = [e for e in self.got if e["type"] == "done"]
        return [e for e in done if all(e.get(k) == v for k, v in match.items())]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(out) + 1)
        op = rng.choice(("flip", "insert", "delete", "truncate", "repeat"))
        if op == "flip" and at < len(out):
            out[at] = rng.randrange(256)
        elif op == "insert":
            out[at:at] = rng.choice(NASTY) if rng.random() < 0.6 else rng.randbytes(3)
        elif op == "delete":
            del out[at : at + rng.randint(1, 8)]
        elif op == "truncate":
            del out[at:]
        elif op == "repeat":
            out[at:at] = out[max(0, at - 20) : at]
    return bytes(out)


def test_a_seeded_mutation_fuzzer_gets_http_or_a_close_and_the_balancer_keeps_serving(lab):
    lab.start_balancer()
    cases = [mutate(random.Random(seed), VALID[seed % 3]) for seed in range(300)]
    # No half-close here: a FIN after a cut-short request is its own (xfail) test below.
    with ThreadPoolExecutor(32) as pool:
        results = list(
            pool.map(lambda data: exchange(lab.listen, data, 0.5, half_close=False), cases)
        )
    for data, (ending, reply) in zip(cases, results, strict=True):
        assert ending != "garbled", (data, reply[:300])
        if request_state(data) != "incomplete":  # a whole request, or a bad one: never a hang
            assert ending in ("answered", "closed"), (data, ending, reply[:300])
    endings = [ending for ending, _ in results]
    assert endings.count("answered") > 100 and endings.count("hang") > 10  # both kinds were hit
    assert sum(reply.startswith(b"HTTP/1.1 400") for _, reply in results) > 10
    assert sum(reply.startswith(b"HTTP/1.1 200") for _, reply in results) > 10
    assert_still_serving(lab)


def test_a_request_dripped_one_byte_per_write_is_answered_whole(lab):
    lab.start_balancer()
    for request, body in zip(VALID, (b"", b"hello world", b"hello world"), strict=True):
        ending, reply = exchange(lab.listen, [request[i : i + 1] for i in range(len(request))])
        head, _, answer = reply.partition(b"\r\n\r\n")
        assert ending == "answered" and head.startswith(b"HTTP/1.1 200"), reply
        assert json.loads(answer)["sha256"] == hashlib.sha256(body).hexdigest()
    assert_still_serving(lab)


def test_a_client_that_vanishes_with_a_reset_at_any_stage_leaks_nothing(lab):
    lab.start_balancer()
    post = b"POST /upload HTTP/1.1\r\nHost: lab\r\n"
    stages = [
        b"GET / HTTP/1.1\r\nHo",  # half a head
        post + b"Content-Length: 1000\r\n\r\n",  # the head, the body still to come
        post + b"Content-Length: 1000\r\n\r\n" + b"x" * 300,  # mid-body
        post + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhe",  # mid-chunk
    ]
    for sent in stages:
        sock = socket.create_connection(split(lab.listen))
        sock.sendall(sent)
        if b"Host: lab" in sent:
            wait_for(lambda: sum(active(lab)) == 1, what="the request to be routed")
        reset(sock)
        wait_for(lambda: sum(active(lab)) == 0, timeout=3, what=f"active 0 after {sent[-20:]}")
    assert_still_serving(lab)


def test_a_client_that_half_closes_mid_request_is_let_go(lab):
    lab.start_balancer()
    for sent in (b"GET / HTTP/1.1\r\nHo", VALID[1][:-3]):  # then FIN: the rest can never come
        ending, reply = exchange(lab.listen, sent, timeout=1.0)
        assert ending == "closed" and (reply == b"" or reply.startswith(b"HTTP/1.1 400")), sent
    assert_still_serving(lab)  # including active back to 0


def test_abandoning_a_slow_request_reports_499_and_frees_the_backend(lab):
    lab.start_balancer()
    events = Events(lab)
    sock = socket.create_connection(split(lab.listen))
    sock.sendall(b"GET /slow?ms=300 HTTP/1.1\r\nHost: lab\r\n\r\n")
    wait_for(lambda: sum(active(lab)) == 1, what="the slow request to be routed")
    reset(sock)
    (done,) = wait_for(lambda: events.done(status=499), what="a done event with status 499")
    assert done["backend"] == "b1" and done["bytes"] == 0
    assert_still_serving(lab)
    assert [e["status"] for e in events.done(id=done["id"])] == [499]


def test_a_backend_killed_mid_response_closes_the_client_connection_never_hangs(lab):
    lab.start_balancer()
    sock = socket.create_connection(split(lab.listen), timeout=3)
    sock.sendall(b"GET /bytes?size=50000000 HTTP/1.1\r\nHost: lab\r\n\r\n")
    received = len(sock.recv(65536))
    lab.kill("b1")  # the client reads slowly, so most of the body is still in b1
    while chunk := sock.recv(1 << 20):  # a hang here raises TimeoutError
        received += len(chunk)
    sock.close()
    assert 0 < received < 50_000_000
    assert_still_serving(lab)


def test_a_backend_killed_mid_response_counts_as_a_failure(lab):
    lab.start_balancer()
    events = Events(lab)
    sock = socket.create_connection(split(lab.listen), timeout=3)
    sock.sendall(b"GET /chunked?n=5000&size=10000 HTTP/1.1\r\nHost: lab\r\n\r\n")
    sock.recv(65536)
    lab.kill("b1")
    while sock.recv(1 << 20):
        pass
    sock.close()
    (done,) = wait_for(lambda: events.done(backend="b1"), what="the done event")
    assert lab.backend_state("b1")["failures"] == 1 and done["status"] >= 500


def test_garbage_pipelined_after_a_valid_request_never_hangs_or_crashes(lab):
    lab.start_balancer()
    ending, reply = exchange(lab.listen, VALID[0] + b"\x00\x01 NOT HTTP\r\n\r\n")
    assert ending in ("answered", "closed") and (reply == b"" or reply.startswith(b"HTTP/1.1 "))
    sock = socket.create_connection(split(lab.listen), timeout=3)
    sock.sendall(VALID[0])
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    sock.sendall(b"\x00\x01 NOT HTTP\r\n\r\n")  # garbage on a connection that is now idle
    reply = sock.recv(65536)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 400") and b"malformed request" in reply
    assert_still_serving(lab)


def test_an_upgrade_other_than_websocket_is_refused_with_501_before_routing(lab):
    """WebSocket handshakes are routed (test_balancer_websocket); h2c and CONNECT are not."""
    lab.start_balancer()
    for request in (
        b"GET /ws HTTP/1.1\r\nHost: lab\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    ):
        ending, reply = exchange(lab.listen, request)
        assert ending == "answered" and reply.startswith(b"HTTP/1.1 501"), (request, reply)
    assert_still_serving(lab)
    assert sum(b["total"] for b in lab.state()["backends"]) == 1  # only the GET /after


def settings(lab) -> tuple:
    state = lab.state()
    backends = [(b["name"], b["address"], b["weight"]) for b in state["backends"]]
    return state["algorithm"], state["mode"], backends


def test_bogus_admin_input_gets_a_4xx_json_error_naming_the_problem_and_changes_nothing(lab):
    lab.start_balancer()
    before = settings(lab)
    for body, field in [
        (b"not json{", "body"),
        (b"[1, 2, 3]", "config"),
        (b'"round-robin"', "config"),
        (b"{}", "config"),
        (b'{"algorithm": {"name": ["random"]}}', "algorithm"),
        (b'{"weights": {"b1": {"w": 2}}}', "weights.b1"),
        (b'{"backends": [{"name": "b1", "address": [1, 2]}]}', "backends[0].address"),
        (b'{"backends": "b1"}', "backends"),
        (b'{"listen": "127.0.0.1:1"}', "listen"),
        (b'{"mode": "tcp", "algorithm": "nope"}', "algorithm"),  # the valid half never lands
    ]:
        status, _, reply = Http(lab.admin_address).request("PUT", "/config", body=body)
        assert status == 400 and json.loads(reply)["field"] == field, (body, reply)
    for request, status, says in [
        (b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n", 404, "no admin endpoint /nope"),
        (b"DELETE /state HTTP/1.1\r\nHost: a\r\n\r\n", 405, "DELETE is not allowed"),
        (b"BREW /state HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request"),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400, "malformed request"),  # TLS
        (b"PUT /backends/zz HTTP/1.1\r\nHost: a\r\n\r\n", 404, "no backend named 'zz'"),
        (b"PUT /backends/b1 HTTP/1.1\r\nContent-Length: 4\r\n\r\n[42]", 400, "expected"),
        (b'POST /backends HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"x', 400, "JSON"),
    ]:
        ending, reply = exchange(lab.admin_address, request)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert ending == "answered" and head.startswith(b"HTTP/1.1 %d" % status), reply
        assert b"application/json" in head and says in json.loads(body)["error"], reply
    assert settings(lab) == before
    assert_still_serving(lab)


def test_oversized_admin_requests_get_a_status_that_names_the_limit(lab):
    lab.start_balancer()
    before = settings(lab)
    wrong = []
    for request, status in [
        (b"PUT /config HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n" + b"x" * 1048577, 413),
        (b"GET /state HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 431),
    ]:
        ending, reply = exchange(lab.admin_address, request, timeout=3)
        head, _, body = reply.partition(b"\r\n\r\n")
        assert ending == "answered" and b"application/json" in head, reply[:300]
        if not head.startswith(b"HTTP/1.1 %d" % status) or b"large" not in body:
            wrong.append((request[:30], status, reply[:9], body[:80]))
    assert settings(lab) == before
    assert_still_serving(lab)
    assert not wrong, "\n".join(map(repr, wrong))


def test_layer_4_survives_random_bytes_immediate_closes_and_silent_half_closes(lab):
    lab.start_balancer("--mode", "tcp")
    rng = random.Random(7)
    for _ in range(20):
        ending, reply = exchange(lab.listen, rng.randbytes(rng.randint(1, 2000)), timeout=2)
        assert ending != "hang" and (reply == b"" or reply.startswith(b"HTTP/1.1 4"))
    for _ in range(10):
        socket.create_connection(split(lab.listen)).close()
        reset(socket.create_connection(split(lab.listen)))
    assert exchange(lab.listen, b"", timeout=2) == ("closed", b"")  # half-close, no data
    wait_for(lambda: sum(b["total"] for b in lab.state()["backends"]) >= 41, what="every conn")
    assert_still_serving(lab)
