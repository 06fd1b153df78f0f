"""The relay: exact counters, sampled events, and a latency chart every viewer shares."""

from __future__ import annotations

import zlib

import pytest

from lab.web.relay import BatchBuilder, LatencyHistory, LineReader, percentile

COUNTERS = {"total": 1}


def route(rid: str, backend: str = "b1") -> dict:
    return {"type": "route", "id": rid, "backend": backend, "reason": "next in turn"}


def done(rid: str, ms: float = 1.0, status: int = 200) -> dict:
    return {"type": "done", "id": rid, "backend": "b1", "status": status, "ms": ms}


def test_lines_come_out_whole_however_the_bytes_are_cut():
    stream = b'HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n\r\n{"a":1}\n{"b":2}\n'
    reader = LineReader()
    lines = []
    for i in range(len(stream)):
        lines += reader.feed(stream[i : i + 1])
    assert lines == [b'{"a":1}', b'{"b":2}']


def test_an_events_endpoint_that_says_no_is_an_error():
    with pytest.raises(ConnectionError, match="404"):
        LineReader().feed(b"HTTP/1.1 404 Not Found\r\n\r\n")


def test_percentiles_are_nearest_rank():
    ordered = [float(n) for n in range(1, 101)]
    assert (percentile(ordered, 0.5), percentile(ordered, 0.95)) == (50.0, 95.0)
    assert percentile([7.0], 0.95) == 7.0


def test_a_batch_carries_events_and_counters_and_nothing_is_sent_when_nothing_happened():
    builder = BatchBuilder()
    builder.add(route("r1"), now=100.2)
    builder.add(done("r1"), now=100.3)
    batch = builder.take(COUNTERS, now=100.4)
    assert [e["type"] for e in batch["events"]] == ["route", "done"]
    assert (batch["counters"], batch["omitted"]) == (COUNTERS, 0)
    assert builder.take(COUNTERS, now=100.5) is None
    assert builder.take({"total": 2}, now=100.6)["counters"] == {"total": 2}


def test_heavy_traffic_is_sampled_but_every_drawn_request_gets_its_end():
    builder = BatchBuilder(max_new_routes=3)
    for n in range(10):
        builder.add(route(f"r{n}"), now=1.0)
    first = builder.take(COUNTERS, now=1.0)
    assert [e["id"] for e in first["events"]] == ["r0", "r1", "r2"]
    assert first["omitted"] == 7
    for n in range(10):
        builder.add(done(f"r{n}"), now=1.01)
    second = builder.take(COUNTERS, now=1.02)
    assert [e["id"] for e in second["events"]] == ["r0", "r1", "r2"]
    assert second["omitted"] == 0  # the same seven requests are not counted twice


def test_every_client_routed_is_named_with_its_backend_however_the_routes_were_sampled():
    builder = BatchBuilder(max_new_routes=2)
    for n in range(12):  # 12 clients, two requests each: the second one's backend counts
        client = f"127.0.0.{n + 2}"
        builder.add({**route(f"a{n}"), "client": client, "backend": "b1"}, now=1.0)
        builder.add({**route(f"b{n}"), "client": client, "backend": f"b{n % 3 + 1}"}, now=1.0)
    batch = builder.take(COUNTERS, now=1.0)
    assert len(batch["events"]) == 2 and batch["omitted"] == 22  # drawing is sampled...
    # ...but who went where is whole: the page's "who moved" note needs every client.
    assert batch["routed"] == {f"127.0.0.{n + 2}": f"b{n % 3 + 1}" for n in range(12)}
    builder.add(done("a0"), now=1.1)
    assert "routed" not in builder.take(COUNTERS, now=1.1)  # only routes name clients


def test_a_retry_and_its_error_follow_a_drawn_request():
    builder = BatchBuilder(max_new_routes=1)
    builder.add(route("r1", "b2"), now=1.0)
    builder.add({"type": "error", "id": "r1", "status": None, "backend": "b2"}, now=1.0)
    builder.add(route("r1", "b3") | {"retry": 1}, now=1.0)
    builder.add(done("r1"), now=1.0)
    builder.add({"type": "config", "changes": {"algorithm": "random"}}, now=1.0)
    events = builder.take(COUNTERS, now=1.0)["events"]
    assert [(e["type"], e.get("backend")) for e in events] == [
        ("route", "b2"),
        ("error", "b2"),
        ("route", "b3"),
        ("done", "b1"),
        ("config", None),
    ]


def test_latency_points_close_each_second_and_gaps_stay_gaps():
    history = LatencyHistory(seconds=60)
    for ms in (1.0, 2.0, 3.0, 100.0):
        history.observe(ms, now=1000.5)
    history.advance(1002.1)
    assert history.take_unsent() == [
        {"t": 1000, "n": 4, "p50": 2.0, "p95": 100.0},
        {"t": 1001, "n": 0, "p50": None, "p95": None},
    ]
    history.advance(5000.0)  # a long quiet spell keeps only the last minute
    assert len(history.points) == 60
    assert history.points[-1]["t"] == 4999


def test_the_latency_chart_reaches_browsers_in_batches():
    builder = BatchBuilder()
    builder.add(done("r1", ms=4.0), now=10.2)
    assert builder.take(COUNTERS, now=10.5)["latency"] == []
    assert builder.take(COUNTERS, now=11.0)["latency"] == [
        {"t": 10, "n": 1, "p50": 4.0, "p95": 4.0}
    ]


def test_a_websocket_tunnel_is_always_drawn_and_its_lifetime_is_no_response_time():
    builder = BatchBuilder(max_new_routes=4)
    for n in range(40):
        builder.add(route(f"r{n}"), now=1.0)
    builder.take(COUNTERS, now=1.0)  # ten times more than drawn: one in ten from now on
    unlucky = [f"t{n}" for n in range(100) if zlib.crc32(f"t{n}".encode()) % 10][:2]
    sampled_out, plain = unlucky
    builder.add(route(sampled_out) | {"upgrade": "websocket"}, now=1.1)
    builder.add(route(plain), now=1.1)  # as unlucky, and no tunnel: left out
    assert [e["id"] for e in builder.take(COUNTERS, now=1.1)["events"]] == [sampled_out]
    builder.add(done(sampled_out, ms=90_000.0, status=101), now=1.2)
    builder.add(done("r0", ms=4.0), now=1.2)
    assert [e["id"] for e in builder.take(COUNTERS, now=1.3)["events"]] == [sampled_out, "r0"]
    assert builder.take(COUNTERS, now=2.0)["latency"] == [{"t": 1, "n": 1, "p50": 4.0, "p95": 4.0}]


def test_udp_datagrams_follow_their_drawn_flow_and_their_round_trips_make_the_chart():
    builder = BatchBuilder(max_new_routes=1)
    builder.add(route("r1") | {"mode": "udp"}, now=5.0)
    builder.add(route("r2") | {"mode": "udp"}, now=5.0)  # not drawn: its datagrams are not
    for rid in ("r1", "r2"):
        builder.add({"type": "datagram", "id": rid, "way": "up", "bytes": 6}, now=5.0)
        builder.add({"type": "datagram", "id": rid, "way": "down", "bytes": 80, "ms": 2.0}, now=5.1)
    builder.add(done("r1") | {"ms": 9000.0, "end": "idle"}, now=5.2)  # a flow's life: not a latency
    batch = builder.take(COUNTERS, now=5.3)
    assert [(e["type"], e["id"]) for e in batch["events"]] == [
        ("route", "r1"), ("datagram", "r1"), ("datagram", "r1"), ("done", "r1"),
    ]  # fmt: skip
    assert batch["latency_now"]["n"] == 2 and batch["latency_now"]["p95"] == 2.0
