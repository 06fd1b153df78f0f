"""`lb-lab bench --tls`'s load: what each client really makes of a new connection, checked
on a real balancer's route events, and how a figure is judged when the load tool, not
the proxy, is the bottleneck."""

from __future__ import annotations

import argparse
import shutil

import pytest
from conftest import Lab, wait_for
from tls_helpers import EchoBackend, make_pems

from lab.bench import full_handshakes, loadgen, tools
from lab.bench.stats import THROUGHPUT, Sample
from lab.bench.tls import HANDSHAKES, NEW_FULL, NEW_RESUMING, RESUMED, TlsFigure, _Runner
from lab.supervisor import Supervisor

# What `openssl s_time -new -www /` printed against lb-lab (OpenSSL 3.0).
S_TIME_OUTPUT = """\
Collecting connection statistics for 2 seconds
*****************************************************************

1736 connections in 1.15s; 1509.57 connections/user sec, bytes read 249984
1736 connections in 3 real seconds, 144 bytes read per connection
"""


def test_s_time_output_gives_its_connection_count():
    assert full_handshakes.parse_s_time(S_TIME_OUTPUT) == 1736
    with pytest.raises(tools.ToolError, match="no connection count"):
        full_handshakes.parse_s_time("ERROR\nconnect:errno=111\n")


def _sample(requests: int, seconds: float = 1.0) -> Sample:
    nothing = float("nan")
    return Sample("x", THROUGHPUT, "t", requests, 0, seconds, nothing, nothing, nothing)


def test_tied_rates_do_not_hide_a_proxy_that_spends_more_cpu():
    # Full handshakes on two cores: the clients are the bottleneck, so both proxies
    # answer ~1,000 a second, but lb-lab spends 0.6 ms of CPU a request, nginx 0.42 ms.
    figure = TlsFigure(HANDSHAKES, "nginx")
    for _ in range(3):
        figure.add("lb-lab", _sample(1000), cpu_s=0.6)
        figure.add("nginx", _sample(990), cpu_s=0.42)
    data = figure.as_json()
    assert data["ratio"] == pytest.approx(1000 / 990, abs=1e-3)
    assert data["cpu_ratio"] == pytest.approx((0.42 / 990) / (0.6 / 1000), abs=1e-3)  # per request
    assert data["met"] is False  # judged on the lower of the two
    assert "misses the goal of >= 0.8x" in figure.text()


def test_a_figure_without_a_goal_is_measured_not_judged():
    figure = TlsFigure(RESUMED, "nginx")
    figure.add("lb-lab", _sample(500), cpu_s=0.2)
    figure.add("nginx", _sample(1000), cpu_s=0.2)
    data = figure.as_json()
    assert (data["ratio"], data["goal"], data["met"]) == (0.5, None, None)
    assert "goal" not in figure.text()


@pytest.mark.parametrize("openssl", [True, False])
def test_full_handshakes_never_come_from_wrk(monkeypatch, tmp_path, openssl):
    # wrk resumes its session on each new connection (the test below), so a full-handshake
    # figure takes s_time, or else the built-in generator, whatever the load tool.
    used: list[tuple[str, object]] = []
    monkeypatch.setattr(full_handshakes, "installed", lambda: openssl)
    monkeypatch.setattr(full_handshakes, "run", lambda *a, **k: used.append(("s_time", None)))
    monkeypatch.setattr(tools, "run", lambda *a, **k: used.append(("wrk", k["headers"])))
    monkeypatch.setattr(
        loadgen, "closed_loop", lambda *a, **k: used.append(("builtin", k["fresh"]))
    )
    options = argparse.Namespace(connections=2, duration=1)
    runner = _Runner(None, make_pems(tmp_path), options, "wrk", print)  # type: ignore[arg-type]
    runner.load("lb-lab", "127.0.0.1", 1, NEW_FULL)
    runner.load("lb-lab", "127.0.0.1", 1, NEW_RESUMING)
    first = ("s_time", None) if openssl else ("builtin", True)
    assert used == [first, ("wrk", ("Connection: close",))]


@pytest.fixture
def terminating(tmp_path):
    """A balancer terminating TLS in front of an echo backend, and its route events."""
    pems = make_pems(tmp_path)
    backend = EchoBackend()
    with Supervisor() as supervisor:
        lab = Lab(supervisor)
        lab.backends["e1"] = backend.address
        flags = ["--tls", "terminate", "--tls-cert", str(pems.certificate)]
        lab.start_balancer(*flags, "--tls-key", str(pems.key))
        yield lab, lab.events()
        for reader in lab._readers:
            reader.close()
    backend.stop()


def _resumed(events, at_least: int) -> list[bool]:
    routes = wait_for(lambda: len(events.of("route")) >= at_least and events.of("route"), 10)
    return [route["tls"]["resumed"] for route in routes]


@pytest.mark.skipif(not full_handshakes.installed(), reason="needs the openssl program")
def test_the_handshakes_figure_makes_full_handshakes_only(terminating):
    lab, events = terminating
    host, _, port = lab.listen.rpartition(":")
    sample = full_handshakes.run("lb-lab", host, int(port), duration=1, clients=2)
    assert sample.requests >= 20 and sample.errors == 0
    resumed = _resumed(events, sample.requests)
    assert len(resumed) >= sample.requests  # one route per connection: a new handshake each
    assert not any(resumed)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk")
def test_wrk_resumes_its_session_on_every_new_connection(terminating):
    # Why the bench has a `resumed` figure and does not use wrk for `handshakes`.
    lab, events = terminating
    _, _, port = lab.listen.rpartition(":")
    url = f"https://localhost:{port}/"
    sample = tools.run("wrk", "lb-lab", url, 2, 1, headers=("Connection: close",))
    assert sample.requests >= 20
    resumed = _resumed(events, sample.requests)
    assert sum(resumed) >= len(resumed) - 4  # all but each connection's first
