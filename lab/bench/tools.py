"""Outside load tools, wrk and hey: run one, and read its report into a Sample."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence

from lab.bench.stats import THROUGHPUT, Sample

TOOLS = ("wrk", "hey")
WRK_THREADS = 1  # two shared cores: one for the tool, the rest for the proxy and backends
_TIME_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ToolError(RuntimeError):
    """The tool failed or printed something we cannot read."""


def installed(tool: str) -> bool:
    return shutil.which(tool) is not None


def auto_tool() -> str:
    """wrk when installed (fastest), else hey, else the built-in generator."""
    return next((tool for tool in TOOLS if installed(tool)), "builtin")


def version(tool: str) -> str:
    probe = {"wrk": [tool, "-v"], "hey": None}.get(tool)
    if not probe:
        return tool
    done = subprocess.run(probe, capture_output=True, text=True, timeout=5, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" Copyright")[0].strip() if first else tool


def run(
    tool: str,
    target: str,
    url: str,
    connections: int,
    duration: float,
    headers: Sequence[str] = (),
) -> Sample:
    """One closed-loop run of wrk or hey against `url`, each request with `headers`
    ("Connection: close" makes every request a new connection)."""
    extra = [arg for header in headers for arg in ("-H", header)]
    if tool == "wrk":
        argv = ["wrk", f"-t{min(WRK_THREADS, connections)}", f"-c{connections}"]
        argv += [f"-d{duration:g}s", "--latency", *extra, url]
        parse = parse_wrk
    elif tool == "hey":
        argv = ["hey", "-z", f"{duration:g}s", "-c", str(connections), *extra, url]
        parse = parse_hey
    else:
        raise ValueError(f"unknown tool {tool!r}")
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration + 30, check=False
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"{tool} did not finish within {duration + 30:.0f}s") from None
    if done.returncode != 0:
        raise ToolError(f"{tool} exited {done.returncode}: {done.stderr.strip()[:200]}")
    return parse(done.stdout, target)


def parse_duration(text: str) -> float:
    """A wrk time such as `812.00us`, `1.05ms`, `2.00s` or `1.50m`, in seconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ToolError(f"not a wrk time: {text!r}")
    return float(match[1]) * _TIME_UNITS_S[match[2]]


def parse_wrk(output: str, target: str) -> Sample:
    """Read `wrk --latency` output: requests, time, errors and the latency distribution."""
    total = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", output, re.M)
    if not total:
        raise ToolError(f"no request count in wrk output: {output.strip()[:200]!r}")
    percentiles = {
        int(q): parse_duration(t) * 1000
        for q, t in re.findall(r"^\s+(50|90|99)(?:\.0+)?%\s+(\S+)\s*$", output, re.M)
    }
    if len(percentiles) != 3:
        raise ToolError("no latency distribution in wrk output (was --latency given?)")
    # "Requests/sec" has more digits than the "in 2.01s" of the total line.
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    seconds = (
        int(total[1]) / float(rate[1]) if rate and float(rate[1]) else parse_duration(total[2])
    )
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx[1])
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return Sample(
        target=target,
        phase=THROUGHPUT,
        tool="wrk",
        requests=int(total[1]),
        errors=errors,
        seconds=seconds,
        p50_ms=percentiles[50],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
    )


def parse_hey(output: str, target: str) -> Sample:
    """Read hey's summary: total time, status codes, errors and the latency distribution."""
    total = re.search(r"^\s*Total:\s+([\d.]+) secs", output, re.M)
    if not total:
        raise ToolError(f"no total time in hey output: {output.strip()[:200]!r}")
    percentiles = {
        int(q): float(t) * 1000
        for q, t in re.findall(r"^\s+(50|90|99)%+ in ([\d.]+) secs", output, re.M)
    }
    errors_block = output.split("Error distribution:", 1)
    if len(percentiles) != 3:
        first_error = errors_block[1].strip().splitlines()[0] if len(errors_block) == 2 else ""
        raise ToolError(f"no latency distribution in hey output {first_error}".strip())
    statuses = [
        (int(code), int(n)) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)
    ]
    answered = sum(n for _, n in statuses)
    failed = sum(n for code, n in statuses if not 200 <= code < 400)
    socket_errors = (
        sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s", errors_block[1], re.M))
        if len(errors_block) == 2
        else 0
    )
    return Sample(
        target=target,
        phase=THROUGHPUT,
        tool="hey",
        requests=answered,
        errors=failed + socket_errors,
        seconds=float(total[1]),
        p50_ms=percentiles[50],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
    )
