"""`lb-lab bench --proxy-protocol` runs both balancers for real and reports both rates."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_proxy_benchmark_measures_both_balancers():
    done = subprocess.run(
        [sys.executable, "-m", "lab", "bench", "--proxy-protocol", "--json",
         "--duration", "0.5", "--rounds", "2", "--connections", "4", "--backends", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    rates = result["req_per_s"]
    assert rates["lb-http"] > 0 and rates["lb-http+proxy"] > 0
    assert len(result["ratios"]) == 2 and result["ratio"] > 0
    assert all(line.endswith(" 0 errors") for line in done.stderr.splitlines() if "round" in line)
