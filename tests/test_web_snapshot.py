"""The `state` and batch counters are built from what the processes' APIs said, and only that."""

from __future__ import annotations

from lab.web.controller import BackendProcess, LabController
from lab.web.snapshot import counters, snapshot

BALANCER = {
    "mode": "http",
    "listen": "127.0.0.1:8080",
    "admin": "127.0.0.1:8081",
    "algorithm": "least-connections",
    "hash_key": "client-ip",
    "errors": {"retry": 2},
    "backends": [
        {"name": "b1", "address": "127.0.0.1:9001", "weight": 2, "healthy": True,
         "state": "up", "reason": "", "active": 1, "total": 10, "failures": 0, "ewma_ms": 1.5},
        {"name": "b2", "address": "127.0.0.1:9002", "weight": 1, "healthy": True,
         "state": "up", "reason": "", "active": 0, "total": 4, "failures": 2, "ewma_ms": 0.0},
    ],
}  # fmt: skip
TRAFFIC = {
    "target": "http://127.0.0.1:8080/", "rate": 5.0, "clients": 4, "keep_alive": True,
    "paused": False, "protocol": "http", "udp_session": 5, "client_addresses": "bound",
    "tls": True, "sni_mix": {"shop.lab.test": 3}, "resumption": False,
    "heavy_share": 0.0, "heavy_ms": 500.0,
    "latency_ms": {"p50": 1.0, "p95": 3.0},
    "counters": {"sent": 14, "completed": 13, "failed": 0, "in_flight": 1,
                 "status": {"2xx": 13, "4xx": 0, "5xx": 0}, "failures": {}},
}  # fmt: skip


def test_counters_add_up_the_balancers_own_numbers():
    result = counters(BALANCER, TRAFFIC)
    assert (result["total"], result["active"], result["failures"]) == (14, 1, 2)
    assert result["backends"]["b2"] == {
        "active": 0, "total": 4, "failures": 2, "ewma_ms": 0.0, "healthy": True,
        "state": "up", "reason": "", "datagrams": 0,
    }  # fmt: skip
    assert result["udp"]["flows"] == 0  # no flow table reported: nothing live
    assert result["traffic"] == {
        "sent": 14, "completed": 13, "failed": 0, "in_flight": 1,
        "status": {"2xx": 13, "4xx": 0, "5xx": 0}, "latency_ms": {"p50": 1.0, "p95": 3.0},
    }  # fmt: skip
    assert counters(BALANCER, None)["traffic"] is None


def test_udp_counters_come_from_the_flow_table():
    udp = {"flows": 3, "flows_started": 9, "evicted": 2, "expired": 4, "datagrams_up": 30,
           "datagrams_down": 28, "refused": 1}  # fmt: skip
    balancer = BALANCER | {"mode": "udp", "udp": udp}
    balancer["backends"] = [b | {"datagrams": 15} for b in BALANCER["backends"]]
    result = counters(balancer, None)
    assert result["udp"] == {k: v for k, v in udp.items() if k != "refused"}
    assert result["backends"]["b1"]["datagrams"] == 15
    settings = {"udp": {"idle_timeout_ms": 500, "per_datagram": True, "max_flows": 9}}
    state = snapshot(balancer | {"settings": settings}, None, [])
    assert state["udp"] == {"idle_timeout_ms": 500, "per_datagram": True}


def test_readings_are_numbered_so_the_page_keeps_the_newer_counters():
    class Balancer:  # stands in for the balancer's admin API
        def get(self, path: str) -> dict:
            assert path == "/state"
            return dict(BALANCER)

    controller = LabController()
    first, second = controller._read(Balancer()), controller._read(Balancer())
    assert 0 < counters(first, None)["read"] < counters(second, None)["read"]
    assert counters(BALANCER, None)["read"] == 0  # a reading from elsewhere counts as oldest


def test_a_state_joins_the_controllers_backends_with_the_balancers_numbers():
    killed = BackendProcess("b2", "127.0.0.1:9002", process="killed")
    killed.knobs["latency_ms"] = 300.0
    records = [BackendProcess("b1", "127.0.0.1:9001"), killed]
    state = snapshot(BALANCER, TRAFFIC, records, history=[{"t": 1, "n": 0}])
    b1, b2 = state["backends"]
    assert (b1["weight"], b1["state"], b1["total"]) == (2, "up", 10)
    assert (b2["state"], b2["failures"], b2["latency_ms"], b2["error_rate"]) == (
        "killed", 2, 300.0, 0.0,
    )  # fmt: skip
    assert state["traffic"] == {"available": True, **{k: TRAFFIC[k] for k in (
        "target", "rate", "clients", "keep_alive", "paused", "protocol", "udp_session",
        "client_addresses", "tls", "sni_mix", "resumption",
        "heavy_share", "heavy_ms", "client_addresses",
    )}}  # fmt: skip
    assert state["algorithm"] == "least-connections"
    assert "consistent-hash" in state["algorithms"]
    assert state["latency_history"] == [{"t": 1, "n": 0}]


def test_a_running_backend_shows_the_balancers_view_and_a_dead_one_its_fate():
    down = {**BALANCER["backends"][0], "state": "down", "healthy": False,
            "reason": "2 failed checks in a row (connection refused)"}  # fmt: skip
    balancer = {**BALANCER, "backends": [down, BALANCER["backends"][1]]}
    records = [BackendProcess("b1", "127.0.0.1:9001"), BackendProcess("b2", "", process="killed")]
    b1, b2 = snapshot(balancer, TRAFFIC, records)["backends"]
    assert (b1["process"], b1["state"], b1["reason"]) == (
        "running", "down", "2 failed checks in a row (connection refused)",
    )  # fmt: skip
    assert (b2["process"], b2["state"]) == ("killed", "killed")
    assert counters(balancer, None)["backends"]["b1"]["state"] == "down"


def test_a_lab_without_traffic_says_why():
    state = snapshot(BALANCER, None, [], traffic_error="it exited")
    assert state["traffic"] == {"available": False, "error": "it exited"}
