"""`set_mode udp` in a real lab: the balancer takes flows and the traffic sends datagrams."""

from __future__ import annotations

import pytest
from conftest import wait_for

from lab.web.controller import LabController, LabSettings


@pytest.fixture(scope="module")
def controller():
    lab = LabController(LabSettings(balancer_port=0, first_backend_port=0, paused=True, seed=3))
    lab.start()
    yield lab
    lab.close()


def test_set_mode_udp_makes_the_traffic_send_datagrams_and_back(controller):
    assert controller.run("set_mode", mode="udp") == {"ok": True}
    assert controller.traffic_state()["protocol"] == "udp"
    assert controller.run("send", count=6) == {"ok": True}
    counters = wait_for(
        lambda: (c := controller.counters())["udp"]["datagrams_down"] == 6 and c,
        what="six replies",
    )
    assert counters["udp"]["datagrams_up"] == 6
    assert counters["udp"]["flows"] == 4  # four clients, each its own address: four flows
    assert sum(b["datagrams"] for b in counters["backends"].values()) == 6
    assert counters["active"] == 4  # a live flow holds its backend, as a connection would
    state = controller.snapshot()
    assert state["mode"] == "udp" and state["traffic"]["protocol"] == "udp"
    assert state["udp"]["idle_timeout_ms"] == 10_000
    assert controller.run("set_mode", mode="http") == {"ok": True}
    assert controller.traffic_state()["protocol"] == "http"


def test_udp_refuses_a_sticky_cookie_with_its_reason(controller):
    assert controller.run("set_mode", mode="udp") == {"ok": True}
    answer = controller.run("configure", settings={"sticky": {"mode": "cookie"}})
    assert answer["ok"] is False and "needs Layer 7" in answer["error"]
    assert controller.run("set_mode", mode="http") == {"ok": True}
