"""`lb-lab bench --viewers`, end to end: a short run with two web processes and Redis.

A short run with a handful of viewers cannot judge the issue's targets (200 and
400 viewers at 2,000 req/s need the full benchmark on a quiet machine); it
checks that the benchmark measures what it says it does and leaves nothing running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import CHROMIUM, needs_chromium

from lab.bench.procs import alive


@pytest.fixture(scope="module")
def short_run() -> dict:
    pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install)")
    pytest.importorskip("aiohttp")
    done = subprocess.run(
        [sys.executable, "-m", "lab", "bench", "--viewers", "2,4", "--web-workers", "2"]
        + ["--web-seconds", "1.5", "--web-rate", "200", "--chromium", str(CHROMIUM), "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@needs_chromium
def test_each_step_connects_its_viewers_through_the_balancer_to_both_processes(short_run):
    steps = short_run["steps"]
    assert [step["viewers"] for step in steps] == [2, 4]
    last = steps[-1]["figures"]
    assert last["viewers_connected"] == 4 and last["viewers_failed"] == 0
    assert set(last["viewers_by_process"]) == {"w1", "w2"}  # the sticky cookie names each
    assert sum(last["viewers_by_process"].values()) == 4


@needs_chromium
def test_delivery_frames_and_cpu_are_measured(short_run):
    for step in short_run["steps"]:
        figures = step["figures"]
        assert figures["delivery_samples"] > 0
        assert 0 < figures["delivery_p50_ms"] <= figures["delivery_p95_ms"]
        assert figures["delivery_p95_ms"] <= figures["delivery_max_ms"]
        assert figures["presenter_fps"] > 0
        assert figures["achieved_rps"] > 0
        assert {"web w1", "web w2", "relay (lb-lab serve)", "redis"} <= set(figures["cpu_percent"])
        assert all(value >= 0 for value in figures["cpu_percent"].values())


@needs_chromium
def test_every_process_it_started_is_gone(short_run):
    assert short_run["started"], "it should have seen the lab's processes"
    assert short_run["leftover"] == []
    assert not any(alive(pid) for pid in short_run["started"])


@pytest.mark.parametrize("steps", ["0", "50,25", "10,10", "many"])
def test_viewer_counts_must_be_positive_and_increasing(steps):
    done = subprocess.run(
        [sys.executable, "-m", "lab", "bench", "--viewers", steps],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--viewers" in done.stderr


def test_the_crowd_merges_its_rooms_before_taking_percentiles():
    from lab.bench.crowd import merge

    def room(delays, process, transport="websocket"):
        return {
            "delays_ms": delays, "lags_ms": [1.0], "counts": [len(delays)], "connected": 1,
            "failed": 0, "failures": [], "transports": [transport], "processes": [process],
        }  # fmt: skip

    # A slow room's batches count in the p95 of all: 10 of 100 samples at 900 ms.
    figures = merge([room([10.0] * 90, "w1"), room([900.0] * 10, "w2", "polling")])
    assert figures["delivery_samples"] == 100
    assert figures["delivery_p50_ms"] == 10.0
    assert figures["delivery_p95_ms"] == 900.0 and figures["delivery_max_ms"] == 900.0
    assert figures["viewers_by_process"] == {"w1": 1, "w2": 1}
    assert figures["transports"] == {"websocket": 1, "polling": 1}
    assert figures["batches_min_per_viewer"] == 10 and figures["batches_max_per_viewer"] == 90
