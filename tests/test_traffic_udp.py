"""The traffic generator's UDP clients through a real balancer in mode udp: each client sends
from its own address, in sessions of source ports, and counts replies and losses."""

from __future__ import annotations

from conftest import Http, wait_for
from test_traffic_processes import counters, state


def start(lab, *flags: str) -> Http:
    child = lab.supervisor.start(
        "traffic", ["traffic", "--target", f"http://{lab.listen}", "--protocol", "udp", *flags]
    )
    return Http(child.addresses["control"])


def send(control: Http, count: int) -> None:
    assert control.json("POST", "/send", {"count": count})[0] == 200


def replied(control: Http, count: int) -> dict:
    return wait_for(
        lambda: (c := counters(control))["completed"] == count and c["in_flight"] == 0 and c,
        what=f"{count} replies",
    )


def test_each_client_is_a_source_address_and_a_session_is_one_flow(lab):
    lab.start_balancer("--mode", "udp")
    reader = lab.events()
    control = start(lab, "--paused", "--clients", "2", "--udp-session", "3")
    send(control, 6)  # c1 and c2 take turns: three each, one source port each
    assert replied(control, 6)["status"]["reply"] == 6
    routes = wait_for(lambda: len(reader.of("route")) == 2 and reader.of("route"), what="2 flows")
    assert sorted(r["client"].rsplit(":", 1)[0] for r in routes) == ["127.0.0.2", "127.0.0.3"]
    send(control, 2)  # each client's fourth datagram: a fresh source port, a new flow
    replied(control, 8)
    routes = wait_for(lambda: len(reader.of("route")) == 4 and reader.of("route"), what="4 flows")
    assert len({r["client"] for r in routes}) == 4
    assert lab.state()["udp"]["datagrams_up"] == 8
    control.close()


def test_a_fresh_port_every_time_makes_every_datagram_a_flow(lab):
    lab.start_balancer("--mode", "udp")
    control = start(lab, "--paused", "--clients", "1", "--udp-session", "1")
    send(control, 3)
    replied(control, 3)
    assert lab.state()["udp"]["flows_started"] == 3
    assert [b["total"] for b in lab.state()["backends"]] == [1, 1, 1]
    control.close()


def test_a_lost_reply_is_a_timeout_and_the_protocol_changes_live(lab):
    lab.start_balancer("--mode", "udp")
    lab.knobs("b1", error_rate=1)
    control = start(lab, "--paused", "--clients", "1", "--udp-session", "0")
    send(control, 1)  # b1 drops it
    wait_for(lambda: counters(control)["failures"]["timeout"] == 1, timeout=6, what="a timeout")
    assert control.json("PUT", "/config", {"protocol": "http"})[0] == 200
    lab.configure(mode="http")
    send(control, 1)
    answers = wait_for(lambda: (c := counters(control))["completed"] == 1 and c, what="HTTP")
    assert answers["status"]["2xx"] + answers["status"]["5xx"] == 1  # a status: it was HTTP
    assert state(control)["protocol"] == "http"
    control.close()
