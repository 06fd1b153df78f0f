"""Layer 4 UDP against real backend processes: flows, not connections.

Every datagram here is real, on loopback, from a client socket bound to its own
source address (127.0.0.x), through the balancer's datagram listener to the toy
backends' UDP side and back.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
from conftest import Http, split, wait_for

FAST_CHECKS = {"enabled": True, "interval_ms": 100, "timeout_ms": 80, "rise": 1, "fall": 1}


class UdpClient:
    """One client address and port: a flow, as far as the balancer can tell."""

    def __init__(self, balancer: str, host: str = "127.0.0.1", timeout: float = 2.0) -> None:
        self.balancer = split(balancer)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(timeout)
        self.sent = 0

    def send(self, data: bytes | None = None) -> None:
        self.sent += 1
        self.sock.sendto(data if data is not None else f"ping {self.sent}".encode(), self.balancer)

    def ask(self, data: bytes | None = None) -> dict:
        """Send one datagram and return the backend's reply (the socket's timeout if none)."""
        self.send(data)
        return json.loads(self.sock.recvfrom(70000)[0])

    def ask_until(self, wanted, tries: int = 20) -> dict:
        """Ask again until a reply satisfies `wanted`: UDP loses the datagram a dead port ate."""
        self.sock.settimeout(0.3)
        for _ in range(tries):
            try:
                reply = self.ask()
            except TimeoutError:
                continue
            if wanted(reply):
                return reply
        raise AssertionError(f"no wanted reply in {tries} tries")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def clients():
    made: list[UdpClient] = []

    def make(balancer: str, host: str = "127.0.0.1", timeout: float = 2.0) -> UdpClient:
        made.append(UdpClient(balancer, host, timeout))
        return made[-1]

    yield make
    for client in made:
        client.close()


def test_a_flows_datagrams_stick_and_a_new_source_port_is_routed_again(lab, clients):
    lab.start_balancer("--mode", "udp")
    client = clients(lab.listen, "127.0.0.2")
    replies = [client.ask() for _ in range(5)]
    assert [r["backend"] for r in replies] == ["b1"] * 5  # one flow, one decision
    assert [r["served"] for r in replies] == [1, 2, 3, 4, 5]  # the backend's own count
    others = [clients(lab.listen, "127.0.0.2").ask()["backend"] for _ in range(2)]
    assert others == ["b2", "b3"]  # same address, new source port: new flows, round robin
    state = lab.state()
    assert state["udp"]["flows"] == 3 and state["udp"]["datagrams_up"] == 7
    assert [b["active"] for b in state["backends"]] == [1, 1, 1]  # live flows, not datagrams


def test_per_datagram_mode_spreads_one_clients_datagrams(lab, clients):
    lab.start_balancer("--mode", "udp", "--udp-per-datagram")
    reader = lab.events()
    client = clients(lab.listen, "127.0.0.3")
    assert [client.ask()["backend"] for _ in range(6)] == ["b1", "b2", "b3"] * 2
    wait_for(lambda: len(reader.of("done", end="answered")) == 6, what="six answered exchanges")
    assert len(reader.of("route", mode="udp")) == 6  # one routing decision per datagram
    assert lab.state()["udp"]["flows"] == 0  # each exchange ended at its reply


def test_least_connections_counts_live_flows(lab, clients):
    lab.start_balancer("--mode", "udp", "--algorithm", "least-connections")
    busy = clients(lab.listen, "127.0.0.4")
    assert busy.ask()["backend"] == "b1"
    for _ in range(3):
        busy.ask()  # many datagrams, still one flow on b1
    names = [clients(lab.listen, "127.0.0.4").ask()["backend"] for _ in range(2)]
    assert sorted(names) == ["b2", "b3"]  # b1 holds a live flow, so it is not the least


def test_ip_hash_keys_on_address_and_port(lab, clients):
    lab.start_balancer("--mode", "udp", "--algorithm", "ip-hash")
    reader = lab.events()
    client = clients(lab.listen, "127.0.0.5")
    client.ask()
    port = client.sock.getsockname()[1]
    route = reader.wait("route")
    assert route["client"] == f"127.0.0.5:{port}"
    assert route["reason"].startswith(f"hash(127.0.0.5:{port}) mod 3")


def test_an_idle_flow_ends_and_its_next_datagram_starts_a_new_one(lab, clients):
    lab.start_balancer("--mode", "udp", "--udp-idle-timeout-ms", "300")
    reader = lab.events()
    client = clients(lab.listen, "127.0.0.6")
    client.ask()
    client.ask()
    done = reader.wait("done", timeout=5)
    assert done["end"] == "idle" and done["datagrams_up"] == 2 and done["datagrams"] == 2
    assert done["bytes_up"] == len(b"ping 1") * 2 and done["bytes"] > 100
    assert done["ms"] >= 300
    assert lab.state()["udp"]["flows"] == 0
    client.ask()  # same address and port, but the balancer forgot it: a new flow
    routes = wait_for(lambda: len(reader.of("route")) == 2 and reader.of("route"), what="routes")
    assert routes[0]["id"] != routes[1]["id"]


def test_a_full_table_evicts_the_flow_idle_the_longest(lab, clients):
    lab.start_balancer("--mode", "udp", "--udp-max-flows", "2")
    reader = lab.events()
    first, second, third = (clients(lab.listen, f"127.0.0.{n}") for n in (7, 8, 9))
    first.ask()
    second.ask()
    first.ask()  # first is now the more recent: second has been idle longest
    third.ask()
    evicted = reader.wait("done", end="evicted")
    assert evicted["backend"] == "b2" and evicted["datagrams_up"] == 1
    state = lab.state()["udp"]
    assert state["flows"] == 2 and state["evicted"] == 1
    assert first.ask()["backend"] == "b1"  # the survivor keeps its backend


def test_a_killed_backends_flow_moves_on_its_next_datagram(lab, clients):
    lab.start_balancer("--mode", "udp")
    reader = lab.events()
    client = clients(lab.listen, "127.0.0.10")
    assert client.ask()["backend"] == "b1"
    lab.kill("b1")
    # The next datagram dies at b1's closed port; the kernel's ICMP reply marks the flow.
    moved = client.ask_until(lambda reply: reply["backend"] != "b1")
    assert moved["backend"] == "b2"
    route = wait_for(lambda: len(reader.of("route")) == 2 and reader.of("route")[-1], what="2")
    assert route["reason"].startswith("b1, this flow's backend, answered with ICMP port")
    assert "so the flow moves on this datagram" in route["reason"]
    assert reader.wait("done", end="refused")["backend"] == "b1"
    b1 = lab.backend_state("b1")
    assert b1["failures"] >= 1 and b1["state"] == "down"  # passive health took it out


def test_a_flow_whose_backend_goes_down_moves_and_the_reason_says_so(lab, clients):
    lab.start_balancer("--mode", "udp")
    lab.configure(health=FAST_CHECKS)
    reader = lab.events()
    client = clients(lab.listen, "127.0.0.11")
    assert client.ask()["backend"] == "b1"
    lab.knobs("b1", healthy=False)
    reader.wait("health", backend="b1", healthy=False)
    assert client.ask()["backend"] == "b2"
    route = wait_for(lambda: len(reader.of("route")) == 2 and reader.of("route")[-1], what="2")
    assert route["reason"].startswith("b1, this flow's backend, is down (1 failed checks")
    assert reader.wait("done", end="backend-down")["backend"] == "b1"


def test_active_udp_checks_mark_a_backend_down_and_up(lab):
    lab.start_balancer("--mode", "udp")
    lab.configure(health=FAST_CHECKS)
    reader = lab.events()
    check = reader.wait("check", backend="b2", ok=True)
    assert check["detail"].startswith("replied")
    lab.knobs("b2", healthy=False)
    down = reader.wait("health", backend="b2", healthy=False)
    assert down["source"] == "active" and '"healthy":true' in down["reason"]
    lab.knobs("b2", healthy=True)
    up = reader.wait("health", backend="b2", healthy=True)
    assert up["reason"] == "1 good checks in a row: back in service"


def test_an_active_check_of_a_silent_or_closed_port_fails(lab):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # reads nothing, answers nothing
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: the kernel answers ICMP port unreachable
    try:
        lab.start_balancer(
            "--mode", "udp", "--backend", f"quiet=127.0.0.1:{silent.getsockname()[1]}",
            "--backend", f"gone=127.0.0.1:{closed_port}", backends=[],
        )  # fmt: skip
        lab.configure(health=FAST_CHECKS)
        reader = lab.events()
        assert reader.wait("check", backend="quiet")["detail"] == "no answer within 80 ms"
        assert reader.wait("check", backend="gone")["detail"] == "port unreachable (ICMP)"
    finally:
        silent.close()


def test_icmp_port_unreachable_counts_as_a_failure(lab, clients):
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    lab.start_balancer("--mode", "udp", "--backend", f"gone=127.0.0.1:{port}", backends=[])
    reader = lab.events()
    client = clients(lab.listen, "127.0.0.12", timeout=0.3)
    with pytest.raises(TimeoutError):
        client.ask()
    health = reader.wait("health", backend="gone", healthy=False)
    assert health["source"] == "passive" and "ICMP port unreachable" in health["reason"]
    state = lab.state()
    assert state["backends"][0]["failures"] == 1 and state["udp"]["refused"] == 1


def test_an_empty_datagram_is_counted_and_opens_no_flow(lab, clients):
    lab.start_balancer("--mode", "udp")
    client = clients(lab.listen, "127.0.0.13", timeout=0.3)
    client.send(b"")
    wait_for(lambda: lab.state()["udp"].get("dropped_empty") == 1, what="the empty datagram")
    assert lab.state()["udp"]["flows"] == 0
    assert client.ask(b"after")["backend"] == "b1"  # and the next one goes through


def test_the_largest_datagram_passes_whole(lab, clients):
    lab.start_balancer("--mode", "udp")
    client = clients(lab.listen, "127.0.0.14")
    reply = client.ask(b"x" * 65507)  # the most an IPv4 UDP datagram can carry
    assert reply["bytes"] == 65507 and reply["backend"] == "b1"
    with pytest.raises(OSError):
        client.send(b"x" * 65508)  # one more cannot even be sent: the kernel refuses it


def test_a_flood_of_new_flows_stays_within_max_flows(lab, clients):
    lab.start_balancer("--mode", "udp", "--udp-max-flows", "50")
    balancer_pid = lab.supervisor.children["balancer"].pid
    before = _rss_kib(balancer_pid)
    target = split(lab.listen)
    senders = []
    for host in range(20, 40):  # 20 source addresses, many ports each
        for _ in range(25):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((f"127.0.0.{host}", 0))
            senders.append(sock)
    try:
        for round in range(1, 5):
            for sock in senders:
                sock.sendto(b"flood", target)
            # The kernel drops what overflows the listener's buffer; most gets through.
            wait_for(
                lambda round=round: lab.state()["udp"]["flows_started"] >= 200 * round,
                timeout=10,
                what=f"round {round} of the flood",
            )
        state = lab.state()
    finally:
        for sock in senders:
            sock.close()
    udp = state["udp"]
    assert udp["flows"] <= 50 and udp["max_flows"] == 50
    assert udp["evicted"] == udp["flows_started"] - udp["flows"] - udp.get("expired", 0)
    assert udp["evicted"] >= 750
    assert _rss_kib(balancer_pid) - before < 20_000  # bounded: 800+ flows came, 50 stayed
    assert clients(lab.listen, "127.0.0.41").ask()["backend"] in ("b1", "b2", "b3")


def test_a_backend_that_never_replies_fails_its_flows(lab, clients):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        lab.start_balancer(
            "--mode", "udp", "--udp-idle-timeout-ms", "200",
            "--backend", f"quiet=127.0.0.1:{silent.getsockname()[1]}", "--backend",
            f"b2={lab.backends['b2']}", backends=[],
        )  # fmt: skip
        reader = lab.events()
        client = clients(lab.listen, "127.0.0.15", timeout=0.3)
        with pytest.raises(TimeoutError):
            client.ask()  # quiet got it and said nothing
        assert silent.recvfrom(100)[0] == b"ping 1"
        done = reader.wait("done", backend="quiet")
        assert done["end"] == "idle" and done["datagrams"] == 0
        health = reader.wait("health", backend="quiet", healthy=False)
        assert "a flow got no reply in 200 ms" in health["reason"]
        client.sock.settimeout(5)  # b2 answers: a loaded machine may take longer than 0.3 s
        assert client.ask()["backend"] == "b2"
    finally:
        silent.close()


def test_a_reply_from_the_wrong_address_never_reaches_the_client(lab, clients):
    backend = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    backend.bind(("127.0.0.1", 0))
    impostor = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    impostor.bind(("127.0.0.1", 0))
    backend.settimeout(5)
    try:
        lab.start_balancer(
            "--mode", "udp", "--backend", f"odd=127.0.0.1:{backend.getsockname()[1]}",
            backends=[],
        )  # fmt: skip
        client = clients(lab.listen, "127.0.0.16", timeout=0.5)
        client.send(b"hello")
        data, flow_socket = backend.recvfrom(100)
        impostor.sendto(b'{"backend":"impostor"}', flow_socket)  # right port, wrong sender
        with pytest.raises(TimeoutError):
            client.sock.recvfrom(100)
        backend.sendto(b'{"backend":"odd"}', flow_socket)  # the real backend is heard
        assert json.loads(client.sock.recvfrom(100)[0]) == {"backend": "odd"}
        assert lab.state()["udp"]["datagrams_down"] == 1
    finally:
        backend.close()
        impostor.close()


def test_tcp_waits_while_the_balancer_is_at_udp_and_back(lab, clients):
    lab.start_balancer()
    client = clients(lab.listen, "127.0.0.17", timeout=0.3)
    with pytest.raises(TimeoutError):
        client.ask()  # mode http: datagrams are not routed
    assert lab.state()["udp"]["dropped_not_udp"] == 1
    lab.configure(mode="udp")
    assert client.ask()["backend"] == "b1"
    with socket.create_connection(split(lab.listen), timeout=5) as sock:
        assert sock.recv(1) == b""  # mode udp: a TCP connection is closed unrouted


def test_udp_settings_are_refused_when_wrong(lab):
    lab.start_balancer("--mode", "udp")
    status, answer = lab.admin("PUT", "/config", {"udp": {"max_flows": 0}})
    assert status == 400 and answer["field"] == "udp.max_flows"
    status, answer = lab.admin("PUT", "/config", {"sticky": {"mode": "cookie"}})
    assert status == 400 and "needs Layer 7" in answer["error"]
    status, answer = lab.admin(
        "PUT", "/config", {"rules": [{"name": "api", "path_prefix": "/api", "pool": "default"}]}
    )
    assert status == 400 and "addresses and datagrams" in answer["error"]
    changes = lab.configure(udp={"per_datagram": True})["changes"]
    assert changes["udp"]["per_datagram"] is True
    assert lab.state()["settings"]["udp"]["idle_timeout_ms"] == 10_000


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1])


def test_the_balancer_process_is_still_ours(lab):
    lab.start_balancer("--mode", "udp")
    assert os.path.exists(f"/proc/{lab.supervisor.children['balancer'].pid}")


def test_metrics_count_flows_and_datagrams(lab, clients):
    lab.start_balancer("--mode", "udp")
    client = clients(lab.listen, "127.0.0.18")
    client.ask()
    client.ask()
    http = Http(lab.admin_address)
    try:
        _, _, body = http.request("GET", "/metrics")
    finally:
        http.close()
    text = body.decode()
    assert "lb_udp_flows 1\n" in text
    assert 'lb_udp_datagrams_total{way="up"} 2\n' in text
    assert 'lb_backend_datagrams_total{backend="b1"} 2\n' in text
