"""The UDP benchmark's own parts: the load tool against a real balancer, flows held open for
the memory figure, nginx's generated stream UDP config, and the report's arithmetic."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import split

from lab.bench.peers import Upstream
from lab.bench.udp import UdpReport, nginx_udp_config, stream_module
from lab.bench.udp_load import UdpRun, hold_flows, run_load


def test_the_load_tool_keeps_every_flow_talking_through_the_balancer(lab):
    lab.start_balancer("--mode", "udp")
    run = run_load(split(lab.listen), flows=8, seconds=0.5)
    assert run.replies > 8 and run.lost == 0 and run.per_second == run.replies / 0.5
    state = lab.state()
    assert state["udp"]["flows"] == 8  # eight sockets, eight flows
    assert state["udp"]["datagrams_down"] >= run.replies
    assert 0 < run.percentile(0.5) <= run.percentile(0.99)


def test_held_flows_stay_live_in_the_balancer(lab):
    lab.start_balancer("--mode", "udp")
    socks = hold_flows(split(lab.listen), 300)
    try:
        assert lab.state()["udp"]["flows"] == 300
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.skipif(shutil.which("nginx") is None or stream_module() is None,
                    reason="needs nginx with its stream module")  # fmt: skip
def test_nginx_accepts_the_udp_proxy_config(tmp_path):
    conf = tmp_path / "nginx.conf"
    upstreams = [Upstream("b1", "127.0.0.1", 9001), Upstream("b2", "127.0.0.1", 9002)]
    conf.write_text(nginx_udp_config(str(tmp_path), 8080, upstreams, stream_module()))
    assert "listen 127.0.0.1:8080 udp rcvbuf=4m;" in conf.read_text()
    done = subprocess.run(
        ["nginx", "-t", "-q", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "e")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


def test_the_ratio_is_the_median_of_the_rounds_ratios():
    report = UdpReport(flows=64, duration=1.0, rounds=3)
    report.runs["lb-udp"] = [UdpRun(64, 1.0, replies=n) for n in (900, 1200, 1000)]
    report.runs["nginx-udp"] = [UdpRun(64, 1.0, replies=n) for n in (1000, 1000, 2000)]
    assert report.ratio() == 0.9  # rounds: 0.9, 1.2, 0.5
    assert report.median("lb-udp") == 1000
    assert "lb-udp / nginx-udp: 0.90x (misses the goal" in report.text()


def test_cpu_per_exchange_is_the_proxys_cpu_time_over_its_replies():
    # The throughput ratio moves with whatever else the machine runs; the proxy's own CPU
    # time per answered exchange is what the two proxies differ by, so it is reported too.
    report = UdpReport(flows=64, duration=1.0, rounds=2)
    report.runs["lb-udp"] = [UdpRun(64, 1.0, replies=1000, cpu_s=s) for s in (0.012, 0.014)]
    report.runs["nginx-udp"] = [UdpRun(64, 1.0, replies=2000, cpu_s=0.02)] * 2
    assert report.runs["lb-udp"][0].cpu_us == pytest.approx(12.0)
    assert report.as_json()["cpu_us_per_exchange"] == {"lb-udp": 13.0, "nginx-udp": 10.0}
    assert "cpu 13.0 us/exchange" in report.text()
    assert UdpRun(64, 1.0, replies=0, cpu_s=0.01).cpu_us is None  # nothing answered


def test_the_load_tool_measures_the_proxys_cpu_over_its_run(lab):
    lab.start_balancer("--mode", "udp")
    pid = lab.supervisor.children["balancer"].pid
    run = run_load(split(lab.listen), flows=8, seconds=0.5, pid=pid)
    assert run.replies > 8 and run.cpu_s is not None and 0 <= run.cpu_s <= 1.0
    if run.replies >= 2000:  # at least 20 ms of the balancer's CPU: two of /proc's ticks
        assert run.cpu_s > 0
    assert run_load(split(lab.listen), flows=8, seconds=0.2).cpu_s is None  # no pid, no figure
