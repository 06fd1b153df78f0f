"""Every Socket.IO command, good and bad, against a real lab: real backends, balancer, traffic.

One lab serves the whole module (starting it takes about a second); after each
test the `settled` fixture puts it back as it started, through the same
commands the page sends.
"""

from __future__ import annotations

import os
import signal

import pytest
from conftest import Http, wait_for
from socket_browser import Browser

from lab.lessons.settings import balancer_defaults
from lab.web import actions
from lab.web.app import create_app
from lab.web.controller import LabController, LabSettings

NAMES = ["b1", "b2", "b3"]
# Health checks as the lab runs them, only faster, so a restarted backend is back in
# service (two good checks) within a fraction of a second.
LAB_HEALTH = {
    **balancer_defaults()["health"],
    "enabled": True,
    "interval_ms": 100,
    "timeout_ms": 80,
}


def totals(counters: dict) -> list[int]:
    return [counters["backends"][name]["total"] for name in NAMES]


def settings(state: dict) -> dict:
    """What a command may change: everything in a state but the live numbers."""
    keys = ("name", "address", "weight", "state", "latency_ms", "jitter_ms", "error_rate")
    return {
        **{k: state[k] for k in ("mode", "algorithm", "hash_key", "traffic", "problem")},
        "backends": [{k: b[k] for k in keys} for b in state["backends"]],
    }


@pytest.fixture(scope="module")
def lab():
    controller = LabController(
        LabSettings(balancer_port=0, first_backend_port=0, paused=True, rate=5, seed=7)
    )
    controller.start()
    assert controller.run("configure", settings={"health": LAB_HEALTH})["ok"]
    app = create_app({"TESTING": True, "ASYNC_MODE": "threading", "CONTROLLER": controller})
    yield app, controller
    controller.close()


@pytest.fixture
def browser(lab):
    app, controller = lab
    browser = Browser(app)
    browser.state()
    browser.forget()
    yield browser
    browser.client.disconnect()


@pytest.fixture(autouse=True)
def settled(lab):
    """Put the lab back as it started: b1-b3 up, plain, round robin, quiet traffic, zero counts."""
    yield
    _, controller = lab
    run = controller.run
    for name, record in list(controller.backends.items()):
        if name not in NAMES:
            assert run("remove_backend", name=name)["ok"]
        elif record.process != "running":
            assert run("restart_backend", name=name)["ok"]
    for name in NAMES:
        if name not in controller.backends:
            assert run("add_backend")["ok"]
    for name in NAMES:
        assert run("set_weight", name=name, weight=1)["ok"]
        assert run("set_latency", name=name, latency_ms=0, jitter_ms=0)["ok"]
        assert run("set_error_rate", name=name, error_rate=0)["ok"]
        assert run("set_healthy", name=name, healthy=True)["ok"]
        assert run("drain_backend", name=name, draining=False)["ok"]
    assert run("configure", settings={"health": LAB_HEALTH, "sticky": {"mode": "off"}})["ok"]
    wait_for(
        lambda: all(b["state"] == "up" for b in controller.snapshot()["backends"]),
        what="every backend back in service",
    )
    assert run("set_mode", mode="http")["ok"]
    assert run("set_hash_key", hash_key="client-ip")["ok"]
    # A round robin switched to afresh starts again from b1.
    assert run("set_algorithm", algorithm="random")["ok"]
    assert run("set_algorithm", algorithm="round-robin")["ok"]
    assert run("set_traffic", rate=5, clients=4, keep_alive=True)["ok"]
    assert run("pause")["ok"]
    wait_for(lambda: controller.counters()["active"] == 0, what="requests to finish")
    assert run("reset")["ok"]


def test_a_browser_gets_the_whole_picture_when_it_connects(lab):
    app, _ = lab
    browser = Browser(app)
    state = browser.state()
    browser.client.disconnect()
    assert [(b["name"], b["state"], b["weight"]) for b in state["backends"]] == [
        ("b1", "up", 1),
        ("b2", "up", 1),
        ("b3", "up", 1),
    ]
    assert (state["mode"], state["algorithm"]) == ("http", "round-robin")
    assert "least-connections" in state["algorithms"]
    assert state["traffic"] | {"target": ""} == {
        "available": True, "target": "", "rate": 5.0, "clients": 4,
        "keep_alive": True, "paused": True, "protocol": "http", "udp_session": 5,
        "heavy_share": 0.0, "heavy_ms": 500.0,
        "client_addresses": "bound",  # on Linux each client binds its own 127.0.0.k+1
        "tls": False, "sni_mix": {}, "resumption": True,  # plain HTTP until set_tls
    }  # fmt: skip
    assert state["traffic"]["target"] == f"http://{state['balancer']['listen']}/"
    assert state["counters"]["total"] == 0


def test_send_six_under_round_robin_and_every_browser_sees_two_two_two(browser, lab):
    other = Browser(lab[0])
    other.forget()
    assert browser.command(action="send", count=6) == {"ok": True}
    counters = browser.counters_when(lambda c: c["total"] == 6 and c["active"] == 0)
    assert totals(counters) == [2, 2, 2]
    assert totals(other.counters_when(lambda c: c["total"] == 6)) == [2, 2, 2]
    other.client.disconnect()
    events = browser.events_when(lambda events: sum(e["type"] == "route" for e in events) >= 6)
    routes = [e for e in events if e["type"] == "route"]
    assert [e["backend"] for e in routes] == ["b1", "b2", "b3", "b1", "b2", "b3"]
    assert all("next in turn" in e["reason"] for e in routes)
    traffic = browser.counters_when(lambda c: c["traffic"]["completed"] == 6)["traffic"]
    assert (traffic["sent"], traffic["failed"], traffic["status"]["2xx"]) == (6, 0, 6)


def test_switching_algorithm_mode_and_hash_key(browser, lab):
    _, controller = lab
    assert browser.command(action="set_algorithm", algorithm="consistent-hash") == {"ok": True}
    assert browser.command(action="set_hash_key", hash_key="header:X-User") == {"ok": True}
    assert browser.command(action="set_mode", mode="tcp") == {"ok": True}
    state = browser.received("state")[-1]
    assert (state["algorithm"], state["hash_key"], state["mode"]) == (
        "consistent-hash",
        "header:X-User",
        "tcp",
    )
    balancer = Http(controller.addresses["admin"]).json("GET", "/state")[1]
    assert (balancer["algorithm"], balancer["mode"]) == ("consistent-hash", "tcp")


def test_weights_latency_and_errors_reach_the_real_processes(browser, lab):
    _, controller = lab
    assert browser.command(action="set_weight", name="b2", weight=3) == {"ok": True}
    assert browser.command(action="set_latency", name="b1", latency_ms=40, jitter_ms=5) == {
        "ok": True
    }
    assert browser.command(action="set_error_rate", name="b3", error_rate=1) == {"ok": True}
    b1, b2, b3 = browser.received("state")[-1]["backends"]
    assert (b1["latency_ms"], b1["jitter_ms"], b2["weight"], b3["error_rate"]) == (40, 5, 3, 1)
    knobs = Http(controller.backends["b1"].address).json("GET", "/_lab/state")[1]["knobs"]
    assert (knobs["latency_ms"], knobs["jitter_ms"]) == (40, 5)
    browser.forget()
    assert browser.command(action="send", count=5) == {"ok": True}
    counters = browser.counters_when(lambda c: c["total"] == 5 and c["active"] == 0)
    assert counters["backends"]["b2"]["total"] == 3  # weights 1:3:1
    assert counters["backends"]["b3"]["failures"] == 1  # every answer from b3 is a 500


def test_traffic_settings_pause_and_resume(browser, lab):
    _, controller = lab
    assert browser.command(action="set_traffic", rate=0.5, clients=2, keep_alive=False) == {
        "ok": True
    }
    assert browser.command(action="resume") == {"ok": True}
    traffic = browser.received("state")[-1]["traffic"]
    assert (traffic["rate"], traffic["clients"], traffic["keep_alive"], traffic["paused"]) == (
        0.5,
        2,
        False,
        False,
    )
    assert browser.command(action="pause") == {"ok": True}
    assert browser.received("state")[-1]["traffic"]["paused"] is True


def test_a_killed_backend_is_really_dead_and_traffic_flows_to_the_others(browser, lab):
    _, controller = lab
    pid = controller.supervisor.children["b2"].pid
    assert browser.command(action="kill_backend", name="b2") == {"ok": True}
    states = [b["state"] for b in browser.received("state")[-1]["backends"]]
    assert states == ["up", "killed", "up"]
    assert controller.supervisor.children["b2"].process.returncode == -9  # SIGKILL
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert browser.command(action="kill_backend", name="b2") == {
        "ok": False,
        "error": "b2 is not running (killed); restart it first",
    }
    assert browser.command(action="set_latency", name="b2", latency_ms=5)["ok"] is False
    assert browser.command(action="send", count=6) == {"ok": True}
    counters = browser.counters_when(lambda c: c["traffic"]["completed"] == 6)
    assert counters["traffic"]["failed"] == 0  # the balancer retried elsewhere, or...
    b2 = counters["backends"]["b2"]  # ...its health checks had already taken b2 out
    assert b2["failures"] >= 1 or b2["state"] == "down", b2

    assert browser.command(action="restart_backend", name="b2") == {"ok": True}
    assert browser.received("state")[-1]["backends"][1]["process"] == "running"
    assert controller.supervisor.children["b2"].alive()
    # The balancer takes it back once its health checks pass: a card follows its counters.
    browser.counters_when(lambda c: c["backends"]["b2"]["state"] == "up")
    browser.forget()
    assert browser.command(action="send", count=9) == {"ok": True}
    counters = browser.counters_when(lambda c: c["traffic"]["completed"] == 15)
    assert counters["traffic"]["failed"] == 0


def test_restarting_a_running_backend_gives_it_a_new_process_on_the_same_port(browser, lab):
    _, controller = lab
    before = controller.supervisor.children["b1"].pid
    address = controller.backends["b1"].address
    assert browser.command(action="set_latency", name="b1", latency_ms=25) == {"ok": True}
    assert browser.command(action="restart_backend", name="b1") == {"ok": True}
    assert controller.supervisor.children["b1"].pid != before
    assert controller.backends["b1"].address == address
    knobs = Http(address).json("GET", "/_lab/state")[1]["knobs"]
    assert knobs["latency_ms"] == 25  # the lab's settings for b1 survive its restart


def test_a_backend_that_dies_by_itself_is_shown_down(browser, lab):
    _, controller = lab
    os.kill(controller.supervisor.children["b3"].pid, signal.SIGKILL)  # not through the lab
    wait_for(lambda: browser.states() == ["up", "up", "down"], what="the watchdog to notice")
    assert browser.command(action="restart_backend", name="b3") == {"ok": True}
    assert browser.received("state")[-1]["backends"][2]["process"] == "running"
    browser.counters_when(lambda c: c["backends"]["b3"]["state"] == "up")


def test_health_checks_drain_and_balancer_settings_from_the_page(browser, lab):
    fast = {"enabled": True, "interval_ms": 100, "timeout_ms": 80, "rise": 2, "fall": 2}
    assert browser.command(action="configure", settings={"health": fast}) == {"ok": True}
    assert browser.command(action="set_healthy", name="b2", healthy=False) == {"ok": True}
    counters = browser.counters_when(lambda c: c["backends"]["b2"]["state"] == "down")
    assert counters["backends"]["b2"]["reason"].startswith("2 failed checks in a row")
    events = browser.events_when(
        lambda events: any(e["type"] == "health" and e["backend"] == "b2" for e in events)
    )
    health = [e for e in events if e["type"] == "health" and e["backend"] == "b2"]
    assert health[-1]["healthy"] is False and health[-1]["source"] == "active"

    assert browser.command(action="drain_backend", name="b3", draining=True) == {"ok": True}
    b3 = browser.received("state")[-1]["backends"][2]
    assert (b3["process"], b3["state"], b3["draining"]) == ("running", "drained", True)
    browser.forget()
    assert browser.command(action="send", count=3) == {"ok": True}
    counters = browser.counters_when(lambda c: c["total"] == 3 and c["active"] == 0)
    assert totals(counters) == [3, 0, 0]

    assert browser.command(action="configure", settings={"sticky": {"mode": "source"}})["ok"]
    assert lab[1].snapshot()["backends"][0]["state"] == "up"
    state = lab[1].balancer_api().get("/state")
    assert state["settings"]["sticky"]["mode"] == "source"


def test_adding_and_removing_backends(browser, lab, monkeypatch):
    _, controller = lab
    assert browser.command(action="add_backend") == {"ok": True}
    state = browser.received("state")[-1]
    assert [b["name"] for b in state["backends"]] == ["b1", "b2", "b3", "b4"]
    balancer = Http(controller.addresses["admin"]).json("GET", "/state")[1]
    assert [b["name"] for b in balancer["backends"]] == ["b1", "b2", "b3", "b4"]
    process = controller.supervisor.children["b4"].process

    assert browser.command(action="remove_backend", name="b4") == {"ok": True}
    assert [b["name"] for b in browser.received("state")[-1]["backends"]] == NAMES
    assert process.poll() is not None

    monkeypatch.setattr(actions, "MAX_BACKENDS", 3)
    assert browser.command(action="add_backend") == {
        "ok": False,
        "error": "the lab runs at most 3 backends",
    }


def test_reset_zeroes_balancer_backend_and_traffic_counters(browser, lab):
    _, controller = lab
    assert browser.command(action="send", count=3) == {"ok": True}
    browser.counters_when(lambda c: c["traffic"]["completed"] == 3)
    assert browser.command(action="reset") == {"ok": True}
    # The three resets are separate calls, so a batch may land between them: wait for
    # the first batch that has seen all of them.
    counters = browser.counters_when(lambda c: c["total"] == 0 and c["traffic"]["sent"] == 0)
    assert counters["traffic"]["completed"] == 0 and totals(counters) == [0, 0, 0]
    served = Http(controller.backends["b1"].address).json("GET", "/_lab/state")[1]["counters"]
    assert served["served"] == 0


NO_SUCH_POOL = {"rules": [{"pool": "x", "path_prefix": "/"}]}
BAD = [
    ("send", "a command is an object"),
    ({"action": "explode"}, "unknown action 'explode'"),
    ({"count": 3}, "unknown action None"),
    ({"action": "set_algorithm", "algorithm": "fastest"}, "algorithm must be one of"),
    ({"action": "set_algorithm"}, "set_algorithm needs algorithm"),
    ({"action": "set_algorithm", "algorithm": "random", "why": 1}, "unexpected field 'why'"),
    ({"action": "set_mode", "mode": "sctp"}, "mode must be one of: http, tcp, udp"),
    ({"action": "set_hash_key", "hash_key": "moon-phase"}, "bad hash_key 'moon-phase'"),
    ({"action": "set_weight", "name": "b9", "weight": 2}, "no backend named 'b9'"),
    ({"action": "set_weight", "name": "b1", "weight": 0}, "weight must be 1 to 256"),
    ({"action": "set_weight", "name": "b1", "weight": "3"}, "weight must be a whole number"),
    ({"action": "set_weight", "name": "b1", "weight": True}, "weight must be a whole number"),
    ({"action": "set_latency", "name": "b1", "latency_ms": -5}, "latency_ms must be 0 to"),
    ({"action": "set_latency", "name": "b1", "latency_ms": 1, "jitter_ms": 1e9}, "jitter_ms"),
    ({"action": "set_latency", "name": 1, "latency_ms": 1}, "name must be text"),
    ({"action": "set_error_rate", "name": "b1", "error_rate": 2}, "error_rate must be 0 to 1"),
    ({"action": "set_error_rate", "name": "zz", "error_rate": 0.1}, "no backend named 'zz'"),
    ({"action": "set_traffic"}, "needs at least one of"),
    ({"action": "set_traffic", "rate": 99999}, "rate must be 0 to 5000"),
    ({"action": "set_traffic", "clients": 0}, "clients must be 1 to 64"),
    ({"action": "set_traffic", "keep_alive": "yes"}, "keep_alive must be true or false"),
    ({"action": "send", "count": 0}, "count must be 1 to 1000"),
    ({"action": "send", "count": 1001}, "count must be 1 to 1000"),
    ({"action": "send", "count": "6"}, "count must be a whole number"),
    ({"action": "kill_backend", "name": "b9"}, "no backend named 'b9'"),
    ({"action": "restart_backend"}, "restart_backend needs name"),
    ({"action": "remove_backend", "name": "nope"}, "no backend named 'nope'"),
    ({"action": "add_backend", "name": "b7"}, "add_backend takes no fields"),
    ({"action": "pause", "now": True}, "pause takes no fields"),
    ({"action": "reset", "all": True}, "reset takes no fields"),
    ({"action": "set_healthy", "name": "b1", "healthy": "no"}, "healthy must be true or false"),
    ({"action": "drain_backend", "name": "b8", "draining": True}, "no backend named 'b8'"),
    ({"action": "configure", "settings": []}, "settings must be an object of settings"),
    ({"action": "configure", "settings": {"backends": []}}, "backends belongs to the lab"),
    ({"action": "configure", "settings": {"health": {"fall": 0}}}, "health.fall: must be 1-100"),
    ({"action": "configure", "settings": NO_SUCH_POOL}, "rules[0].pool: no pool named 'x'"),
]


@pytest.mark.parametrize("data, words", BAD, ids=[str(words) for _, words in BAD])
def test_a_bad_command_is_refused_and_changes_nothing(browser, lab, data, words):
    _, controller = lab
    before = settings(controller.snapshot())
    answer = browser.client.emit("command", data, callback=True)
    assert answer["ok"] is False
    assert words in answer["error"]
    assert settings(controller.snapshot()) == before
    assert browser.received("state") == []  # nobody is told about a change that did not happen
    # and the lab still works
    assert browser.command(action="send", count=1) == {"ok": True}
    browser.counters_when(lambda c: c["total"] == 1 and c["active"] == 0)
