"""HTTPS in the lab: its CA made at start-up, the CA download, and `set_tls` moving the
balancer, the backends' TLS listeners and the traffic together (lab.web.https)."""

from __future__ import annotations

import json
import socket
import ssl
import stat

import pytest
from conftest import EventReader, Http, split, wait_for

from lab.web.app import create_app
from lab.web.controller import LabController, LabSettings
from lab.web.https import curl_line


@pytest.fixture(scope="module")
def lab():
    controller = LabController(
        LabSettings(balancer_port=0, first_backend_port=0, paused=True, rate=5, seed=3)
    )
    controller.start()
    app = create_app({"TESTING": True, "ASYNC_MODE": "threading", "CONTROLLER": controller})
    yield app, controller
    controller.close()


@pytest.fixture
def events(lab):
    _, controller = lab
    reader = EventReader(controller.addresses["admin"])
    admin = Http(controller.addresses["admin"])
    wait_for(lambda: admin.json("GET", "/state")[1]["events"]["subscribers"] >= 1)
    yield reader
    reader.close()


def traffic(controller) -> dict:
    return Http(controller.addresses["traffic"]).json("GET", "/state")[1]


def balancer_addresses(controller) -> dict[str, str]:
    state = Http(controller.addresses["admin"]).json("GET", "/state")[1]
    return {b["name"]: b["address"] for b in state["backends"]}


def tls_change(reader: EventReader) -> dict:
    """The `tls` table of the balancer's latest config event that changed it."""
    event = wait_for(lambda: [e for e in reader.of("config") if "tls" in e["changes"]])[-1]
    return event["changes"]


def test_the_lab_makes_its_ca_at_start_up_with_private_keys(lab):
    _, controller = lab
    files = controller.certificates
    assert files.ca.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600


def test_every_backend_serves_tls_with_the_lab_certificate(lab):
    _, controller = lab
    context = ssl.create_default_context(cafile=controller.certificates.ca)
    for record in controller.backends.values():
        with (
            socket.create_connection(split(record.tls_address), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="api.lab.test") as tls,
        ):
            tls.sendall(b"GET / HTTP/1.1\r\nHost: api.lab.test\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        assert (body["backend"], body["tls"]["sni"]) == (record.name, "api.lab.test")


def test_the_page_offers_the_ca_certificate_and_no_key(lab):
    app, controller = lab
    answer = app.test_client().get("/lab-ca.pem")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/x-pem-file"
    assert answer.data == controller.certificates.ca.read_bytes()
    assert b"PRIVATE KEY" not in answer.data


def test_the_start_up_lines_print_a_curl_that_trusts_the_lab_ca():
    line = curl_line(
        {"certificates": {"ca": "/run/lab/ca.pem"}, "addresses": {"listen": "127.0.0.1:8080"}}
    )
    assert line.strip().startswith(
        "curl --cacert /run/lab/ca.pem --resolve shop.lab.test:8080:127.0.0.1 "
        "https://shop.lab.test:8080/"
    )
    assert curl_line({"certificates": None, "addresses": {"listen": "127.0.0.1:8080"}}) == ""


def test_terminate_sends_the_lab_files_at_layer_7_and_traffic_speaks_https(lab, events):
    _, controller = lab
    assert controller.run("set_tls", tls="terminate") == {"ok": True}
    files = controller.certificates
    changes = tls_change(events)
    assert changes["tls"]["mode"] == "terminate" and changes.get("mode", "http") == "http"
    assert (changes["tls"]["certificate"], changes["tls"]["key"]) == (
        str(files.certificate), str(files.key)
    )  # fmt: skip
    # Termination speaks plain HTTP to the backends: their plain ports.
    assert balancer_addresses(controller) == {n: r.address for n, r in controller.backends.items()}
    state = traffic(controller)
    assert (state["tls"], state["sni_mix"], state["paused"]) == (
        True, {"shop.lab.test": 3, "api.lab.test": 1}, True
    )  # fmt: skip
    assert controller.run("set_tls", tls="off")["ok"]


def test_reencryption_and_passthrough_reach_the_backends_tls_listeners(lab, events):
    _, controller = lab
    tls_ports = {n: r.tls_address for n, r in controller.backends.items()}
    assert controller.run("set_tls", tls="terminate", upstream=True)["ok"]
    assert tls_change(events)["tls"]["upstream_ca"] == str(controller.certificates.ca)
    assert balancer_addresses(controller) == tls_ports

    assert controller.run("set_tls", tls="passthrough", sni_mix="api.lab.test")["ok"]
    assert wait_for(lambda: tls_change(events)["tls"]["mode"] == "passthrough")
    assert Http(controller.addresses["admin"]).json("GET", "/state")[1]["mode"] == "tcp"
    assert balancer_addresses(controller) == tls_ports
    assert traffic(controller)["sni_mix"] == {"api.lab.test": 1}

    # A backend restarted meanwhile gets a new TLS port, and the balancer hears of it.
    assert controller.run("restart_backend", name="b2")["ok"]
    assert balancer_addresses(controller)["b2"] == controller.backends["b2"].tls_address

    assert controller.run("set_tls", tls="off")["ok"]
    assert wait_for(lambda: tls_change(events)["tls"]["mode"] == "off")
    assert balancer_addresses(controller) == {n: r.address for n, r in controller.backends.items()}
    assert traffic(controller)["tls"] is False


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ({"tls": "sideways"}, "tls must be one of: off, terminate, passthrough"),
        ({"tls": "passthrough", "upstream": True}, "upstream (re-encrypting"),
        ({"tls": "terminate", "sni_mix": "shop.lab.test=0"}, "1-100"),
        ({"tls": "terminate", "sni_mix": "10.0.0.1"}, "not a host name"),
        ({}, "set_tls needs tls"),
    ],
)
def test_bad_values_are_refused_whole_and_change_nothing(lab, command, error):
    _, controller = lab
    before = (traffic(controller)["tls"], balancer_addresses(controller))
    answer = controller.run("set_tls", **command)
    assert answer["ok"] is False and error in answer["error"], answer
    assert (traffic(controller)["tls"], balancer_addresses(controller)) == before


def test_the_traffic_mix_and_resumption_are_set_traffic_fields(lab):
    _, controller = lab
    answer = controller.run("set_traffic", sni_mix="shop.lab.test=1", resumption=False)
    assert answer == {"ok": True}
    state = traffic(controller)
    assert (state["sni_mix"], state["resumption"]) == ({"shop.lab.test": 1}, False)
    answer = controller.run("set_traffic", sni_mix="not a name")
    assert answer["ok"] is False and "sni_mix" in answer["error"]


def test_a_lesson_setup_makes_the_lab_plain_again(lab):
    _, controller = lab
    assert controller.run("set_tls", tls="passthrough")["ok"]
    assert controller.run("default_lab")["ok"]
    assert controller.tls_backends is False and traffic(controller)["tls"] is False
    assert balancer_addresses(controller) == {n: r.address for n, r in controller.backends.items()}


def test_passthrough_carries_real_https_end_to_end_with_each_clients_sni(lab):
    """Layer 4 pipes bytes untouched, so HTTPS through it reaches the backends' TLS listeners
    (the SNI routing and the route events' `tls` come with the balancer's passthrough)."""
    _, controller = lab
    assert controller.run("set_tls", tls="passthrough")["ok"]
    try:
        for record in controller.backends.values():
            Http(record.address).json("POST", "/_lab/reset")
        before = traffic(controller)["counters"]
        assert controller.run("send", count=12) == {"ok": True}
        counters = wait_for(
            lambda: (
                (c := traffic(controller)["counters"])["completed"] >= before["completed"] + 12
                and c["in_flight"] == 0
                and c
            ),
            timeout=15,
            what="12 answers over HTTPS",
        )
        assert counters["status"]["2xx"] - before["status"]["2xx"] == 12
        seen: dict[str, int] = {}
        for record in controller.backends.values():
            state = Http(record.address).json("GET", "/_lab/state")[1]["tls"]
            for name, count in state["sni"].items():
                seen[name] = seen.get(name, 0) + count
        # A handshake per connection: three of the four clients ask for shop, one for api.
        assert set(seen) == {"shop.lab.test", "api.lab.test"}
        assert seen["shop.lab.test"] > seen["api.lab.test"] > 0
    finally:
        assert controller.run("set_tls", tls="off")["ok"]


def test_https_stays_through_backends_added_and_a_traffic_restart(lab):
    _, controller = lab
    assert controller.run("set_tls", tls="passthrough", sni_mix="api.lab.test=2")["ok"]
    try:
        assert controller.run("add_backend")["ok"]
        added = max(controller.backends.values(), key=lambda r: r.number)
        assert balancer_addresses(controller)[added.name] == added.tls_address
        assert controller.run("remove_backend", name=added.name)["ok"]

        controller.restart_traffic(None)
        state = traffic(controller)
        assert (state["tls"], state["sni_mix"]) == (True, {"api.lab.test": 2})

        answer = controller.run("compare", seed=1)
        assert answer["ok"] is False and "set_tls off" in answer["error"]
    finally:
        assert controller.run("set_tls", tls="off")["ok"]


def test_closing_the_lab_removes_its_certificates():
    controller = LabController(
        LabSettings(backends=1, balancer_port=0, first_backend_port=0, paused=True)
    )
    controller.start()
    folder = controller.certificates.folder
    assert (folder / "key.pem").exists()
    controller.close()
    assert not folder.exists()


def test_through_passthrough_a_client_resumes_only_with_the_backend_that_knows_its_ticket(lab):
    """Each backend keeps its own session tickets: with ip-hash a client always reaches the
    same backend and resumes; switching resumption off makes every handshake full."""
    _, controller = lab
    assert controller.run("set_tls", tls="passthrough")["ok"]
    assert controller.run("set_algorithm", algorithm="ip-hash")["ok"]
    assert controller.run("set_traffic", keep_alive=False, resumption=True)["ok"]
    try:

        def rounds(n: int) -> dict:
            for _ in range(n):  # one request per client at a time: each keeps its ticket
                done = traffic(controller)["counters"]["completed"]
                assert controller.run("send", count=4)["ok"]
                wait_for(
                    lambda d=done: (
                        (c := traffic(controller)["counters"])["completed"] == d + 4
                        and c["in_flight"] == 0
                    ),
                    timeout=15,
                )
            return traffic(controller)["counters"]["tls"]

        Http(controller.addresses["traffic"]).json("POST", "/reset")
        assert rounds(4) == {"handshakes": 16, "resumed": 12}  # all but each client's first
        assert controller.run("set_traffic", resumption=False)["ok"]
        assert rounds(2) == {"handshakes": 24, "resumed": 12}
    finally:
        controller.run("set_traffic", keep_alive=True, resumption=True)
        controller.run("set_algorithm", algorithm="round-robin")
        assert controller.run("set_tls", tls="off")["ok"]
