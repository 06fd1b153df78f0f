"""Health, failover and retries, end to end: real backends, real probes, real SIGKILLs."""

from __future__ import annotations

import threading
import time

from conftest import Http, wait_for

FAST_CHECKS = {"enabled": True, "interval_ms": 100, "timeout_ms": 80, "rise": 2, "fall": 3}


def served_by(lab, count: int, path: str = "/") -> list[str]:
    client = Http(lab.listen)
    try:
        names = []
        for _ in range(count):
            status, headers, _ = client.get(path)
            assert status == 200
            names.append(headers["x-backend"])
        return names
    finally:
        client.close()


def nth_route(reader, n: int) -> dict:
    """The n-th route event (1-based), once the stream has delivered it."""
    return wait_for(lambda: len(reader.of("route")) >= n and reader.of("route")[n - 1])


def checks_between(reader, backend: str, start: dict, end: dict) -> list[bool]:
    """The results of `backend`'s checks published between two events."""
    events = list(reader.events)
    first, last = events.index(start), events.index(end)
    return [
        e["ok"]
        for e in events[first + 1 : last]
        if e["type"] == "check" and e["backend"] == backend
    ]


def test_active_checks_flap_with_rise_and_fall_hysteresis(lab):
    lab.start_balancer()
    reader = lab.events()
    lab.configure(health=FAST_CHECKS)
    reader.wait("check", backend="b2", ok=True)

    lab.knobs("b2", healthy=False)  # /health answers 503, other paths still work
    down = reader.wait("health", backend="b2", healthy=False)
    assert down["source"] == "active"
    assert (
        down["reason"] == "3 failed checks in a row (GET /health answered 503 Service Unavailable)"
    )
    last_ok = [e for e in reader.of("check", backend="b2", ok=True) if e["t"] < down["t"]][-1]
    assert checks_between(reader, "b2", last_ok, down) == [False, False, False]
    assert lab.backend_state("b2")["state"] == "down"
    assert "b2" not in served_by(lab, 6)

    lab.knobs("b2", healthy=True)
    up = reader.wait("health", backend="b2", healthy=True)
    assert up["reason"] == "2 good checks in a row: back in service"
    last_bad = [e for e in reader.of("check", backend="b2", ok=False) if e["t"] < up["t"]][-1]
    assert checks_between(reader, "b2", last_bad, up) == [True, True]
    assert served_by(lab, 3).count("b2") == 1


def test_tcp_checks_notice_a_killed_backend_without_any_traffic(lab):
    lab.start_balancer("--mode", "tcp")
    reader = lab.events()
    lab.configure(health=FAST_CHECKS | {"fall": 2})
    lab.kill("b3")
    down = reader.wait("health", backend="b3", healthy=False)
    assert down["reason"] == "2 failed checks in a row (connection refused)"
    assert lab.state()["backends"][2]["total"] == 0  # nothing was routed to find out


def test_passive_health_takes_a_failing_backend_out(lab):
    # The way back after fail_timeout_s is tested with a hand-moved clock (test_health.py).
    lab.start_balancer()
    reader = lab.events()
    lab.configure(passive={"max_fails": 2, "fail_timeout_s": 60, "on_5xx": True})
    lab.knobs("b1", error_rate=1.0)
    client = Http(lab.listen)
    statuses = [client.get()[0] for _ in range(6)]  # b1, b2, b3, b1 (2nd failure), ...
    out = reader.wait("health", backend="b1", healthy=False)
    assert out["source"] == "passive"
    assert out["reason"].startswith("2 failures on real traffic within 60 s (answered 500)")
    assert statuses.count(500) == 2  # then b1 got nothing more
    assert lab.backend_state("b1")["state"] == "down"
    client.close()


def test_5xx_answers_do_not_count_for_passive_health_unless_asked(lab):
    lab.start_balancer()
    lab.configure(passive={"max_fails": 1})
    lab.knobs("b1", error_rate=1.0)
    client = Http(lab.listen)
    assert [client.get()[0] for _ in range(6)].count(500) == 2
    assert lab.backend_state("b1")["healthy"] is True
    assert lab.backend_state("b1")["failures"] == 2
    client.close()


class SteadyGets:
    """Clients sending GETs back to back on keep-alive connections, recording every status."""

    def __init__(self, address: str, clients: int = 4) -> None:
        self.address = address
        self.statuses: list[int] = []
        self.backends: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        client = Http(self.address)
        while not self.stop.is_set():
            status, headers, _ = client.get("/")
            with self.lock:
                self.statuses.append(status)
                self.backends.append(headers.get("x-backend", ""))
        client.close()

    def count(self) -> int:
        with self.lock:
            return len(self.statuses)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def test_kill_dash_nine_under_steady_gets_costs_zero_failed_requests(lab):
    for name in lab.backends:
        lab.knobs(name, latency_ms=5)  # so requests are in flight when the kill lands
    lab.start_balancer()
    reader = lab.events()
    load = SteadyGets(lab.listen)
    try:
        wait_for(lambda: load.count() > 150, timeout=10, what="steady traffic")
        lab.kill("b2")
        before = load.count()
        wait_for(lambda: load.count() > before + 300, timeout=10, what="traffic after the kill")
    finally:
        load.finish()
    assert set(load.statuses) == {200}, f"failed: {[s for s in load.statuses if s != 200]}"
    assert "b2" in load.backends[:before]
    assert "b2" not in load.backends[before + 20 :]
    assert reader.of("error", backend="b2"), "the kill was noticed (and retried)"
    assert lab.backend_state("b2")["healthy"] is False  # passive health took it out


def test_all_backends_down_gives_a_fast_clear_503(lab):
    lab.start_balancer()
    for name in ("b1", "b2", "b3"):
        lab.kill(name)
    client = Http(lab.listen)
    client.get()  # the first request finds them dead (and retries through all three)
    started = time.monotonic()
    status, headers, body = client.get()
    assert status == 503
    assert time.monotonic() - started < 0.5
    assert body.startswith(
        b"503 Service Unavailable: no healthy backend (b1 down, b2 down, b3 down)"
    )
    client.close()


def test_panic_mode_spreads_over_every_backend_when_too_few_are_healthy(lab):
    lab.start_balancer()
    reader = lab.events()
    lab.configure(health=FAST_CHECKS | {"fall": 1}, panic_threshold=50)
    lab.knobs("b2", healthy=False)
    lab.knobs("b3", healthy=False)
    reader.wait("health", backend="b2", healthy=False)
    reader.wait("health", backend="b3", healthy=False)
    pool = wait_for(lambda: lab.state()["pools"][0]["panic"] and lab.state()["pools"][0])
    assert pool["candidates"] == ["b1", "b2", "b3"]
    assert sorted(served_by(lab, 6)) == ["b1", "b1", "b2", "b2", "b3", "b3"]
    route = nth_route(reader, 6)
    assert route["reason"].startswith("panic mode: only 1 of 3 backends healthy (under 50%)")

    lab.configure(panic_threshold=0)  # off: the one healthy backend takes everything
    assert served_by(lab, 4) == ["b1"] * 4


def test_backup_serves_only_while_every_primary_is_down(lab):
    lab.start_balancer()
    reader = lab.events()
    backends = [
        {"name": "b1", "address": lab.backends["b1"]},
        {"name": "b2", "address": lab.backends["b2"]},
        {"name": "b3", "address": lab.backends["b3"], "backup": True},
    ]
    lab.configure(backends=backends, health=FAST_CHECKS | {"fall": 1, "rise": 1})
    assert sorted(set(served_by(lab, 6))) == ["b1", "b2"]
    lab.knobs("b1", healthy=False)
    lab.knobs("b2", healthy=False)
    reader.wait("health", backend="b1", healthy=False)
    reader.wait("health", backend="b2", healthy=False)
    assert served_by(lab, 3) == ["b3"] * 3
    assert nth_route(reader, 9)["reason"].startswith(
        "backup in use, because every primary is down (b1, b2)"
    )
    lab.knobs("b1", healthy=True)
    reader.wait("health", backend="b1", healthy=True)
    assert served_by(lab, 2) == ["b1", "b1"]


def test_a_post_that_reached_a_backend_is_never_replayed_silently(lab):
    for name in lab.backends:
        lab.knobs(name, latency_ms=400)
    lab.start_balancer()
    reader = lab.events()

    def post_and_kill(victim_route_count: int) -> tuple[int, bytes, str]:
        client = Http(lab.listen)
        result = {}
        thread = threading.Thread(
            target=lambda: result.update(answer=client.request("POST", "/", body=b"order=1"))
        )
        thread.start()
        route = wait_for(
            lambda: len(reader.of("route")) > victim_route_count and reader.of("route")[-1]
        )
        lab.kill(route["backend"])
        thread.join(10)
        client.close()
        status, _, body = result["answer"]
        return status, body, route["backend"]

    status, body, victim = post_and_kill(0)
    assert status == 502
    assert b"not retried: a POST is not sent twice" in body
    assert not reader.of("route", retry=1)

    lab.configure(retries={"non_idempotent": True})
    status, body, second_victim = post_and_kill(len(reader.of("route")))
    assert status == 200
    replays = [e for e in reader.of("error") if "sending the POST again" in e["reason"]]
    assert replays and replays[0]["reason"].endswith(
        "sending the POST again on another (retries.non_idempotent is on)"
    )
    assert second_victim != victim


def test_retries_stop_after_the_configured_tries(lab):
    lab.start_balancer()
    lab.configure(retries={"tries": 2}, passive={"max_fails": 0})
    for name in ("b1", "b2"):
        lab.kill(name)
    client = Http(lab.listen)
    status, _, body = client.get()  # round robin starts at b1: b1 refuses, b2 refuses, stop
    assert status == 502
    assert b"2 tries used (retries.tries is 2)" in body
    assert client.get()[0] == 200  # b3 is next in turn and alive
    client.close()
