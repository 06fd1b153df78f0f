"""The traffic generator speaks HTTPS: SNI names from a mix, session resumption on and off,
against a real TLS toy backend that says what reached it."""

from __future__ import annotations

import pytest
from conftest import Http, wait_for

from lab.certificates import make_certificates
from lab.supervisor import Supervisor
from lab.traffic.settings import SettingError, Settings, parse_sni_mix
from lab.traffic.tls import names_for

SHOP, API = "shop.lab.test", "api.lab.test"

# -- pure: the mix and who gets which name


def test_a_mix_reads_from_text_or_a_mapping_and_a_bare_name_weighs_one():
    assert parse_sni_mix("f", "shop.lab.test=3, API.lab.test") == {SHOP: 3, API: 1}
    assert parse_sni_mix("f", {SHOP: 2}) == {SHOP: 2}
    assert parse_sni_mix("f", "") == {}


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("shop.lab.test=x", "whole number"),
        ({SHOP: 0}, "1-100"),
        ({SHOP: True}, "1-100"),
        ("127.0.0.1=1", "not a host name"),
        ("bad_name=1", "not a host name"),
        (["shop.lab.test"], "must be like"),
    ],
)
def test_a_bad_mix_is_refused_naming_the_field(bad, why):
    with pytest.raises(SettingError, match=why) as caught:
        Settings().updated({"sni_mix": bad})
    assert caught.value.field == "sni_mix"


def test_clients_get_names_in_the_mix_shares_smoothly_interleaved():
    assert names_for({SHOP: 3, API: 1}, 8) == [SHOP, SHOP, API, SHOP] * 2
    assert names_for({SHOP: 1, API: 1}, 3) == [SHOP, API, SHOP]
    assert names_for({}, 2) == [None, None]


def test_tls_settings_are_checked_whole():
    settings = Settings().updated({"tls": True, "sni_mix": "api.lab.test", "resumption": False})
    assert (settings.tls, settings.sni_mix, settings.resumption) == (True, {API: 1}, False)
    with pytest.raises(SettingError) as caught:
        settings.updated({"tls": "yes"})
    assert caught.value.field == "tls"


# -- real processes: a TLS toy backend and the generator


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_backend(certificates):
    """(supervisor, plain address, TLS address) of backend b1 with a TLS listener."""
    with Supervisor() as supervisor:
        flags = ["--tls-port", "0", "--tls-cert", str(certificates.certificate)]
        flags += ["--tls-key", str(certificates.key)]
        child = supervisor.start("b1", ["backend", "--name", "b1", "--port", "0", *flags])
        yield supervisor, child.addresses["listen"], child.addresses["tls"]


def start_traffic(supervisor, target: str, *flags: str) -> Http:
    args = ["traffic", "--target", target, "--paused", "--clients", "4", *flags]
    return Http(supervisor.start("traffic", args).addresses["control"])


def traffic_state(control: Http) -> dict:
    status, document = control.json("GET", "/state")
    assert status == 200
    return document


def send_and_settle(control: Http, count: int) -> dict:
    """Send `count` requests now and wait until every one is answered."""
    before = traffic_state(control)["counters"]["completed"]
    assert control.json("POST", "/send", {"count": count})[0] == 200
    return wait_for(
        lambda: (
            (c := traffic_state(control)["counters"])["completed"] == before + count
            and c["in_flight"] == 0
            and c
        ),
        timeout=15,
        what=f"{count} answers",
    )


def backend_tls(plain: str) -> dict:
    return Http(plain).json("GET", "/_lab/state")[1]["tls"]


def test_the_sni_mix_reaches_the_backend_in_its_shares(certificates, tls_backend):
    supervisor, plain, secure = tls_backend
    ca, mix = str(certificates.ca), "shop.lab.test=3,api.lab.test=1"
    control = start_traffic(
        supervisor, f"https://{secure}/", "--ca-file", ca, "--sni-mix", mix,
        "--keep-alive", "off", "--resumption", "off",
    )  # fmt: skip
    counters = send_and_settle(control, 40)
    assert (counters["status"]["2xx"], counters["failed"]) == (40, 0)
    # Keep-alive off: one handshake per request, and the requests go round the four clients.
    assert backend_tls(plain)["sni"] == {SHOP: 30, API: 10}
    state = traffic_state(control)
    assert (state["tls"], state["sni_mix"], state["target"]) == (
        True, {SHOP: 3, API: 1}, f"https://{secure}/"
    )  # fmt: skip


def test_resumption_on_reuses_each_clients_session_and_off_does_not(certificates, tls_backend):
    supervisor, plain, secure = tls_backend
    control = start_traffic(
        supervisor, f"https://{secure}/", "--ca-file", str(certificates.ca), "--keep-alive", "off"
    )
    for _ in range(5):  # one request per client at a time: each has its session by the next
        counters = send_and_settle(control, 4)
    # The first connection of each of the 4 clients is a full handshake; the 16 after resume.
    assert counters["tls"] == {"handshakes": 20, "resumed": 16}
    assert (backend_tls(plain)["handshakes"], backend_tls(plain)["resumed"]) == (20, 16)

    assert control.json("PUT", "/config", {"resumption": False})[0] == 200
    for _ in range(3):
        counters = send_and_settle(control, 4)
    assert counters["tls"] == {"handshakes": 32, "resumed": 16}  # 12 more, all full
    assert backend_tls(plain)["resumed"] == 16


def test_tls_switches_on_and_off_while_it_runs(certificates, tls_backend):
    """The same port cannot be both; a TLS port answers plain HTTP with nothing, so plain
    requests to it fail, and switching tls on makes them succeed."""
    supervisor, plain, secure = tls_backend
    control = start_traffic(supervisor, f"http://{secure}/", "--ca-file", str(certificates.ca))
    counters = send_and_settle_failures(control, 4)
    assert counters["status"]["2xx"] == 0
    assert control.json("PUT", "/config", {"tls": True, "sni_mix": {API: 1}})[0] == 200
    counters = send_and_settle(control, 4)
    assert counters["status"]["2xx"] == 4
    assert backend_tls(plain)["sni"] == {API: 4}


def send_and_settle_failures(control: Http, count: int) -> dict:
    assert control.json("POST", "/send", {"count": count})[0] == 200
    return wait_for(
        lambda: (c := traffic_state(control)["counters"])["failed"] == count and c,
        timeout=15,
        what=f"{count} failures",
    )


def test_a_name_the_certificate_lacks_fails_the_handshake_and_is_counted(certificates, tls_backend):
    supervisor, _, secure = tls_backend
    control = start_traffic(
        supervisor, f"https://{secure}/", "--ca-file", str(certificates.ca),
        "--sni-mix", "other.lab.test",
    )  # fmt: skip
    counters = send_and_settle_failures(control, 4)
    assert counters["failures"]["handshake"] == 4 and counters["completed"] == 0


def test_tls_without_a_ca_file_is_refused_and_nothing_changes(tls_backend):
    supervisor, _, secure = tls_backend
    control = start_traffic(supervisor, f"http://{secure}/")
    status, answer = control.json("PUT", "/config", {"tls": True, "rate": 3})
    assert (status, answer["field"]) == (400, "tls") and "--ca-file" in answer["error"]
    state = traffic_state(control)
    assert (state["tls"], state["rate"]) == (False, 5.0)


def test_clients_that_name_themselves_in_a_proxy_header_send_it_before_the_handshake(
    certificates, tls_backend
):
    """Where 127.0.0.2 and up cannot be bound (macOS) the lab's clients say who they are in
    a PROXY header: on the bare socket, then TLS. A Layer 4 balancer that reads the header
    pipes the rest, the TLS, untouched to the backend's TLS port."""
    supervisor, plain, secure = tls_backend
    balancer = supervisor.start("balancer", [
        "balancer", "--mode", "tcp", "--accept-proxy", "--listen", "127.0.0.1:0",
        "--admin", "127.0.0.1:0", "--backend", f"b1={secure}",
    ])  # fmt: skip
    control = start_traffic(
        supervisor, f"https://{balancer.addresses['listen']}/", "--ca-file", str(certificates.ca),
        "--proxy-protocol", "v2", "--sni-mix", "api.lab.test", "--keep-alive", "off",
    )  # fmt: skip
    counters = send_and_settle(control, 4)
    assert (counters["status"]["2xx"], counters["tls"]["handshakes"]) == (4, 4)
    assert backend_tls(plain)["sni"] == {API: 4}
    admin = Http(balancer.addresses["admin"]).json("GET", "/state")[1]
    assert admin["backends"][0]["total"] == 4
