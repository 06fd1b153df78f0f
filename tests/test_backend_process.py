"""One real toy backend process: who served it, keep-alive, pipelining, uploads, knobs, errors."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import Http, raw_exchange, split

from lab.backend.knobs import Knobs
from lab.backend.responses import pattern_bytes
from lab.supervisor import Supervisor, lab_command


@pytest.fixture(scope="module")
def process():
    with Supervisor() as supervisor:
        child = supervisor.start("b1", ["backend", "--name", "b1", "--port", "0", "--seed", "7"])
        yield child


@pytest.fixture
def b1(process):
    """The backend's address; its knobs and counters are back to defaults after each test."""
    address = process.addresses["listen"]
    yield address
    control = Http(address)
    status, _ = control.json("PUT", "/_lab/knobs", Knobs().as_json())
    control.json("POST", "/_lab/reset")
    control.close()
    assert status == 200


def put_knobs(address, **knobs):
    return Http(address).json("PUT", "/_lab/knobs", knobs)


def test_start_up_says_where_it_listens(process):
    address = process.addresses["listen"]
    assert split(address)[1] > 0
    assert f"backend b1 listening on http://{address} and udp://{address}\n" in process.output
    assert process.addresses["udp"] == address  # one port number for every mode


def test_every_answer_says_who_served_it(b1):
    status, headers, body = Http(b1).get("/cart?item=7")
    answer = json.loads(body)
    assert status == 200
    assert headers["x-backend"] == answer["backend"] == "b1"
    assert answer["path"] == "/cart?item=7"
    assert answer["client"] == "127.0.0.1"
    assert answer["bytes_received"] == 0
    assert int(headers["content-length"]) == len(body)


def test_served_counts_data_requests_only(b1):
    client = Http(b1)
    served = [json.loads(client.get("/")[2])["served"] for _ in range(3)]
    client.get("/health")
    _, state = client.json("GET", "/_lab/state")
    assert served == [1, 2, 3]
    assert state["counters"]["served"] == 3
    assert state["counters"]["health_checks"] == 1
    client.json("POST", "/_lab/reset")
    assert json.loads(client.get("/")[2])["served"] == 1


def test_keep_alive_serves_two_requests_on_one_connection(b1):
    client = Http(b1)
    client.get("/one")
    first_socket = client.conn.sock
    status, headers, _ = client.get("/two")
    assert status == 200
    assert client.conn.sock is first_socket
    assert "connection" not in headers


def test_http_1_0_and_connection_close_end_the_connection(b1):
    reply = raw_exchange(b1, b"GET /old HTTP/1.0\r\n\r\n")  # reads until the server closes
    assert reply.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in reply
    with socket.create_connection(split(b1), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        reply = read_until_closed(sock)
    assert b"Connection: close" in reply and reply.endswith(b"}\n")


def test_pipelined_requests_come_back_in_order_even_behind_a_slow_one(b1):
    paths = ["/a?delay_ms=100", "/b", "/c"]
    requests = b"".join(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for path in paths)
    with socket.create_connection(split(b1), timeout=5) as sock:
        sock.sendall(requests)
        responses = read_responses(sock, 3)
    assert [json.loads(body)["path"] for _, body in responses] == paths


def test_chunked_response_arrives_intact(b1):
    with socket.create_connection(split(b1), timeout=5) as sock:
        sock.sendall(b"GET /chunked?n=5&size=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = read_until(sock, lambda data: data.endswith(b"\r\n0\r\n\r\n"))
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and b"X-Backend: b1" in head
    chunks = decode_chunks(payload)
    assert [len(chunk) for chunk in chunks] == [1000] * 5
    assert b"".join(chunks) == pattern_bytes(5000)


def test_bytes_answers_with_content_length(b1):
    status, headers, body = Http(b1).get("/bytes?size=70000")
    assert (status, headers["content-length"], body) == (200, "70000", pattern_bytes(70000))


def test_one_megabyte_upload_is_counted_and_hashed(b1):
    data = os.urandom(1024 * 1024)
    status, _, body = Http(b1).request("POST", "/upload", body=data)
    answer = json.loads(body)
    assert status == 200
    assert answer["bytes_received"] == len(data)
    assert answer["sha256"] == hashlib.sha256(data).hexdigest()


def test_chunked_upload_is_reassembled(b1):
    pieces = [os.urandom(size) for size in (1, 5000, 70000)]
    client = Http(b1)
    client.conn.request("PUT", "/upload", body=iter(pieces), encode_chunked=True)
    answer = json.loads(client.conn.getresponse().read())
    assert answer["bytes_received"] == 75001
    assert answer["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_expect_100_continue_is_answered_before_the_body(b1):
    head = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    with socket.create_connection(split(b1), timeout=5) as sock:
        sock.sendall(head)
        interim = read_until(sock, lambda data: data.endswith(b"\r\n\r\n"))
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        [(status, body)] = read_responses(sock, 1)
    assert status == 200 and json.loads(body)["bytes_received"] == 5


def test_health_turns_503_when_set_unhealthy(b1):
    client = Http(b1)
    assert client.get("/health")[0] == 200
    status, state = put_knobs(b1, healthy=False)
    assert status == 200 and state["knobs"]["healthy"] is False
    status, headers, body = client.get("/health")
    assert (status, headers["x-backend"], json.loads(body)["healthy"]) == (503, "b1", False)
    assert client.get("/")[0] == 200  # unhealthy is a signal, not a refusal


def test_error_rate_one_answers_500_that_still_say_who(b1):
    put_knobs(b1, error_rate=1)
    status, headers, body = Http(b1).get("/")
    answer = json.loads(body)
    assert (status, headers["x-backend"], answer["simulated"]) == (500, "b1", True)
    assert "simulated error" in answer["error"]
    assert Http(b1).json("GET", "/_lab/state")[1]["counters"]["errors"] == 1


def test_a_bad_knob_is_400_naming_it_and_changes_nothing(b1):
    status, reply = put_knobs(b1, latency_ms=500, error_rate=2)
    assert status == 400 and reply["field"] == "error_rate"
    assert Http(b1).json("GET", "/_lab/state")[1]["knobs"] == Knobs().as_json()
    status, _, body = Http(b1).request("PUT", "/_lab/knobs", body=b"{not json")
    assert status == 400 and json.loads(body)["field"] == "body"  # as every lab API says it


def test_latency_knob_slows_requests_down(b1):
    put_knobs(b1, latency_ms=150)
    client = Http(b1)
    started = time.monotonic()
    status = client.get("/")[0]
    assert status == 200
    assert time.monotonic() - started >= 0.15 - 0.005
    started = time.monotonic()
    client.json("GET", "/_lab/state")
    assert time.monotonic() - started < 0.15  # control requests skip the knobs


def test_max_concurrency_makes_concurrent_requests_take_turns(b1):
    put_knobs(b1, max_concurrency=1, latency_ms=100)
    started = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(lambda i: Http(b1).get(f"/{i}")[0], range(3)))
    assert statuses == [200, 200, 200]
    assert time.monotonic() - started >= 3 * 0.1 - 0.005


def test_malformed_request_gets_400_and_the_backend_keeps_serving(b1):
    reply = raw_exchange(b1, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request") and b"Connection: close" in reply
    assert Http(b1).get("/")[0] == 200


def test_bad_query_value_is_400_naming_it(b1):
    status, headers, body = Http(b1).get("/chunked?n=x")
    assert (status, headers["x-backend"], json.loads(body)["field"]) == (400, "b1", "n")


def test_bad_command_line_value_exits_2_with_one_line():
    result = subprocess.run(
        lab_command("backend", "--name", "b1", "--error-rate", "1.5"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--error-rate" in result.stderr


# -- raw socket helpers


def read_until(sock: socket.socket, done, timeout: float = 5.0) -> bytes:
    """recv until done(data) is true; fail after timeout or if the server closes first."""
    data = b""
    deadline = time.monotonic() + timeout
    while not done(data):
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed early after {data[:200]!r}")
        data += chunk
    return data


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """Read `count` Content-Length responses off one connection: [(status, body)]."""
    responses: list[tuple[int, bytes]] = []

    def complete(data: bytes) -> bool:
        responses.clear()
        while b"\r\n\r\n" in data:
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) < length:
                break
            responses.append((int(head.split()[1]), rest[:length]))
            data = rest[length:]
        return len(responses) >= count

    read_until(sock, complete)
    return responses


def decode_chunks(payload: bytes) -> list[bytes]:
    chunks = []
    while True:
        size_line, _, payload = payload.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return chunks
        chunks.append(payload[:size])
        assert payload[size : size + 2] == b"\r\n"
        payload = payload[size + 2 :]
