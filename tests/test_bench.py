"""lb-lab bench: the maths and parsers, the peers' configs, the load generator on real sockets."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from lab.bench import parse_targets, peers
from lab.bench.admin import (
    find_dropped,
)
from lab.bench.report import GOALS, Report, format_text, judge
from lab.bench.stats import LATENCY, THROUGHPUT, Sample, percentile, summarise
from lab.bench.tools import ToolError, parse_duration, parse_hey, parse_wrk

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  456.00us   1.02s    89.00%
    Req/Sec    50.12k     2.34k   55.00k    80.00%
  Latency Distribution
     50%  812.00us
     75%    1.10ms
     90%    1.60ms
     99%    1.20s
  250000 requests in 5.00s, 30.00MB read
  Socket errors: connect 0, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 12
Requests/sec:  49950.00
Transfer/sec:      6.00MB
"""

HEY_OUTPUT = """\
Summary:
  Total:\t2.0015 secs
  Requests/sec:\t27914.0644

Latency distribution:
  10% in 0.0007 secs
  50% in 0.0021 secs
  90% in 0.0040 secs
  99% in 0.0065 secs

Status code distribution:
  [200]\t55860 responses
  [503]\t10 responses

Error distribution:
  [3]\tGet "http://127.0.0.1:1/": dial tcp 127.0.0.1:1: connect: connection refused
"""


def sample(target: str, rps: float, p50: float = 1.0, round_no: int = 1, phase=THROUGHPUT):
    return Sample(target, phase, "wrk", int(rps * 2), 0, 2.0, p50, p50 * 2, p50 * 3, round_no)


# the maths


def test_percentile_interpolates_between_closest_ranks():
    ordered = [1.0, 2.0, 3.0, 4.0]
    assert percentile(ordered, 0) == 1.0
    assert percentile(ordered, 50) == 2.5
    assert percentile(ordered, 100) == 4.0
    assert percentile(list(range(101)), 99) == 99
    assert percentile([7.0], 90) == 7.0
    assert percentile([], 50) == 0.0
    with pytest.raises(ValueError):
        percentile(ordered, 101)


def test_summary_is_the_median_of_the_rounds_so_one_noisy_round_barely_moves_it():
    rounds = [
        sample("lb-http", rps, p50, r)
        for r, (rps, p50) in enumerate([(10_000, 1.0), (2_000, 9.0), (11_000, 1.2)], start=1)
    ]
    summary = summarise(rounds)
    assert summary.rps == 10_000
    assert (summary.rps_min, summary.rps_max) == (2_000, 11_000)
    assert summary.p50_ms == 1.2
    assert sorted(summary.per_round) == [1, 2, 3]


def test_ratios_pair_targets_round_by_round():
    lb = summarise([sample("lb-http", 8_000, round_no=1), sample("lb-http", 4_000, round_no=2)])
    nginx = summarise([sample("nginx", 10_000, round_no=1), sample("nginx", 5_000, round_no=2)])
    verdict = judge(GOALS[0], {(THROUGHPUT, "lb-http"): lb, (THROUGHPUT, "nginx"): nginx}, {})
    # Both rounds say 0.8 although the machine halved its speed in round 2.
    assert verdict.per_round == [0.8, 0.8]
    assert verdict.passed is True
    assert "PASS" in verdict.describe()


def test_added_latency_misses_its_target_when_lb_adds_too_much():
    lb = summarise([sample("lb-http", 1000, p50=0.9, phase=LATENCY)])
    direct = summarise([sample("direct", 1000, p50=0.4, phase=LATENCY)])
    verdict = judge(GOALS[2], {(LATENCY, "lb-http"): lb, (LATENCY, "direct"): direct}, {})
    assert verdict.value == pytest.approx(0.5)
    assert verdict.passed is False
    assert "MISS" in verdict.describe()


def test_a_goal_whose_peer_is_missing_says_why_instead_of_passing_or_missing():
    lb = summarise([sample("lb-http", 8_000)])
    verdict = judge(GOALS[0], {(THROUGHPUT, "lb-http"): lb}, {"nginx": "nginx is not installed"})
    assert verdict.passed is None
    assert "nginx is not installed" in verdict.describe()


def test_text_report_ends_with_a_summary_of_every_goal():
    summaries = {
        (THROUGHPUT, "lb-http"): summarise([sample("lb-http", 6_000)]),
        (THROUGHPUT, "nginx"): summarise([sample("nginx", 10_000)]),
    }
    settings = dict(
        rounds=1,
        duration=1.0,
        backends=3,
        connections=64,
        rate=0.0,
        rate_connections=8,
        throughput_tool="wrk",
        latency_tool="builtin",
    )
    text = format_text(Report(settings, {"lb-http": "lb-lab", "nginx": "nginx"}, summaries))
    summary = text.split("Summary:")[1]
    assert "lb-http / nginx req/s = 0.60" in summary
    assert "MISS" in summary
    assert "no throughput result for lb-tcp" in summary


# the parsers


def test_wrk_report_is_read_with_its_units_and_errors():
    run = parse_wrk(WRK_OUTPUT, "nginx")
    assert run.requests == 250_000
    assert run.rps == pytest.approx(49_950)
    assert (run.p50_ms, run.p90_ms, run.p99_ms) == pytest.approx((0.812, 1.6, 1200.0))
    assert run.errors == 12 + 2 + 1 + 4
    assert run.tool == "wrk"


def test_wrk_report_without_latency_distribution_is_refused():
    without = (
        WRK_OUTPUT.split("  Latency Distribution")[0] + "  250000 requests in 5.00s, 3MB read\n"
    )
    with pytest.raises(ToolError, match="--latency"):
        parse_wrk(without, "nginx")


def test_wrk_time_units():
    assert parse_duration("812.00us") == pytest.approx(812e-6)
    assert parse_duration("1.50m") == 90.0
    with pytest.raises(ToolError):
        parse_duration("12parsecs")


def test_hey_report_counts_answers_and_errors():
    run = parse_hey(HEY_OUTPUT, "direct")
    assert run.requests == 55_870
    assert run.errors == 10 + 3
    assert (run.p50_ms, run.p99_ms) == pytest.approx((2.1, 6.5))
    assert run.seconds == pytest.approx(2.0015)


def test_target_names_and_aliases_keep_the_standard_order():
    assert parse_targets("lb,direct") == ("direct", "lb-http", "lb-tcp")
    assert parse_targets("haproxy") == ("haproxy-http", "haproxy-tcp")
    with pytest.raises(Exception, match="unknown target 'envoy'"):
        parse_targets("envoy")


def test_dropped_counter_is_found_wherever_state_keeps_it():
    assert find_dropped({"mode": "http", "events": {"published": 9, "dropped": 2}}) == 2
    assert find_dropped({"backends": [{"name": "b1"}]}) is None


# the peers' configs, checked by the programs themselves

UPSTREAMS = [peers.Upstream("b1", "127.0.0.1", 9001), peers.Upstream("b2", "127.0.0.1", 9002)]


@pytest.mark.skipif(not peers.installed("nginx"), reason="nginx is not installed")
def test_nginx_accepts_its_config():
    workdir, conf, port = peers.write_nginx(UPSTREAMS)
    try:
        peers.check(peers.nginx_argv(workdir, conf, test=True))
        text = pathlib.Path(conf).read_text()
        assert "keepalive 64;" in text and 'proxy_set_header Connection "";' in text
        assert f"listen 127.0.0.1:{port};" in text
    finally:
        shutil.rmtree(workdir)


@pytest.mark.skipif(not peers.installed("haproxy"), reason="haproxy is not installed")
def test_haproxy_accepts_its_config():
    workdir, conf, http_port, tcp_port = peers.write_haproxy(UPSTREAMS)
    try:
        peers.check(peers.haproxy_argv(conf, test=True))
        text = pathlib.Path(conf).read_text()
        assert "http-reuse always" in text and "nbthread 1" in text
        assert text.count("server b2 127.0.0.1:9002") == 2
        assert http_port != tcp_port
    finally:
        shutil.rmtree(workdir)


def test_a_broken_config_is_reported_in_the_programs_words():
    if not peers.installed("haproxy"):
        pytest.skip("haproxy is not installed")
    workdir, conf, _, _ = peers.write_haproxy(UPSTREAMS)
    try:
        with open(conf, "a") as out:
            out.write("    balance no-such-algorithm\n")
        with pytest.raises(peers.PeerError, match="haproxy rejected its config"):
            peers.check(peers.haproxy_argv(conf, test=True))
    finally:
        shutil.rmtree(workdir)


def test_quick_bench_runs_end_to_end_and_prints_a_summary():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab",
            "bench",
            "--duration",
            "1",
            "--rounds",
            "1",
            "--tool",
            "builtin",
            "--only",
            "direct,lb-http",
            "--backends",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert done.returncode == 0, done.stderr
    summary = done.stdout.split("Summary:")[1]
    assert "added median latency: lb-http p50 - direct p50 = " in summary
    assert "no throughput result for nginx" in summary
    assert "round 1/1 throughput lb-http" in done.stderr
    assert "/events on lb-http: a subscriber read" in done.stdout


def test_bad_option_exits_2_with_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "lab", "bench", "--only", "envoy"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unknown target 'envoy'" in done.stderr
