"""Draining, slow start, max_conns with its queue, and timeouts, against real backends."""

from __future__ import annotations

import socket
import threading
import time

from conftest import Http, split, wait_for


def in_background(function, *args) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = function(*args)
        except Exception as exc:  # the test asserts on it
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def get_once(address: str, path: str = "/") -> tuple[int, str, bytes]:
    client = Http(address, timeout=10)
    try:
        status, headers, body = client.get(path)
        return status, headers.get("x-backend", ""), body
    finally:
        client.close()


def test_a_drained_backend_finishes_in_flight_requests_then_reports_drained(lab):
    lab.knobs("b2", latency_ms=600)
    lab.start_balancer()
    reader = lab.events()
    client = Http(lab.listen)
    client.get()  # b1: the next turn is b2's
    thread, result = in_background(get_once, lab.listen)
    wait_for(lambda: lab.backend_state("b2")["active"] == 1, what="a request in flight on b2")

    status, answer = lab.admin("PUT", "/backends/b2", {"draining": True})
    assert (status, answer["changes"]) == (200, {"draining": {"b2": True}})
    draining = reader.wait("drain", backend="b2")
    assert draining["state"] == "draining"
    assert draining["reason"] == "b2 is draining: no new requests; 1 in flight will finish"
    assert {client.get()[1]["x-backend"] for _ in range(4)} == {"b1", "b3"}

    thread.join(10)
    assert result["value"][:2] == (200, "b2")  # the in-flight request was not cut off
    drained = reader.wait("drain", backend="b2", state="drained")
    assert drained["reason"] == "b2 finished its last request: drained"
    assert lab.backend_state("b2")["state"] == "drained"

    lab.admin("PUT", "/backends/b2", {"draining": False})
    assert "b2" in {client.get()[1]["x-backend"] for _ in range(3)}
    client.close()


def test_slow_start_keeps_a_returning_backend_from_being_hammered_under_least_connections(lab):
    lab.start_balancer("--algorithm", "least-connections", "--seed", "7")
    lab.configure(slow_start_s=60)
    lab.admin("PUT", "/backends/b3", {"draining": True})
    lab.admin("PUT", "/backends/b3", {"draining": False})  # back in service: warming up
    b3 = lab.backend_state("b3")
    assert b3["state"] == "warming"
    assert b3["effective_weight"] < 0.1

    reader = lab.events()
    client = Http(lab.listen)
    served = [client.get()[1]["x-backend"] for _ in range(60)]
    client.close()
    # Without slow start b3 would take a third (ties rotate); warming, it sits out most picks.
    assert served.count("b3") < 10
    routes = wait_for(lambda: len(reader.of("route")) >= 60 and reader.of("route"))
    assert any(
        "warming up in slow start, so it sat out this pick: b3 at" in r["reason"] for r in routes
    )
    # The ramp to full weight is tested with a hand-moved clock (test_health.py).


def test_max_conns_queues_excess_requests_and_serves_them_in_turn(lab):
    lab.knobs("b1", latency_ms=300)
    lab.start_balancer(backends=[])
    reader = lab.events()
    lab.configure(backends=[{"name": "b1", "address": lab.backends["b1"], "max_conns": 1}])
    jobs = [in_background(get_once, lab.listen) for _ in range(3)]
    for thread, _ in jobs:
        thread.join(10)
    assert [result["value"][0] for _, result in jobs] == [200, 200, 200]
    queued = reader.of("queue")
    assert len(queued) == 2
    assert queued[0]["reason"] == "every backend is at max_conns (b1 1/1); waiting for a free slot"
    waited = wait_for(lambda: [r for r in reader.of("route") if r["reason"].startswith("waited")])
    assert len(waited) == 2
    assert lab.backend_state("b1")["active"] == 0


def test_the_queue_is_bounded_in_length_and_in_time(lab):
    lab.knobs("b1", latency_ms=1500)
    lab.start_balancer(backends=[])
    lab.configure(
        backends=[{"name": "b1", "address": lab.backends["b1"], "max_conns": 1}],
        max_queue=1,
        timeouts={"queue_ms": 200},
    )
    busy, _ = in_background(get_once, lab.listen)
    wait_for(lambda: lab.backend_state("b1")["active"] == 1)
    waiting, waited = in_background(get_once, lab.listen)
    wait_for(lambda: lab.state()["pools"][0]["queued"] == 1, what="one request queued")
    status, _, body = get_once(lab.listen)  # the queue holds one: this one is refused at once
    assert status == 503
    assert b"the queue is full (1 waiting)" in body
    waiting.join(10)
    status, _, body = waited["value"]
    assert status == 503
    assert b"in the queue of pool default and no slot freed up (timeouts.queue_ms is 200)" in body
    busy.join(10)


def test_a_slowloris_client_costs_one_connection_and_is_cut_off(lab):
    lab.start_balancer()
    lab.configure(timeouts={"client_header_ms": 400})
    loris = socket.create_connection(split(lab.listen), timeout=10)
    loris.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\n")
    started = time.monotonic()
    answers = []
    for i in range(6):  # drip a header line while others are served
        loris.sendall(b"X-Drip-%d: 1\r\n" % i)
        answers.append(get_once(lab.listen)[0])
        if time.monotonic() - started > 0.3:
            break
    assert set(answers) == {200}
    reply = b""
    while chunk := loris.recv(65536):
        reply += chunk
    assert time.monotonic() - started < 3
    assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"request head took longer than 400 ms" in reply
    loris.close()


def test_an_idle_keep_alive_connection_is_closed_after_idle_ms(lab):
    lab.start_balancer()
    lab.configure(timeouts={"idle_ms": 200})
    sock = socket.create_connection(split(lab.listen), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
    data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    while sock.recv(65536):  # the rest of the answer, then the close
        pass
    assert 0.15 < time.monotonic() - started < 3
    sock.close()


def test_a_silent_backend_times_out_and_the_request_moves_on(lab):
    lab.knobs("b1", latency_ms=3000)
    lab.start_balancer()
    reader = lab.events()
    lab.configure(timeouts={"backend_response_ms": 300})
    started = time.monotonic()
    status, backend, _ = get_once(lab.listen)  # b1's turn; it stays silent
    assert (status, backend) == (200, "b2")
    assert time.monotonic() - started < 2.5
    error = reader.wait("error", backend="b1")
    assert error["reason"] == "b1 sent nothing for 300 ms; trying another"
