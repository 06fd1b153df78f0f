"""Load made of full TLS handshakes: every request on a new connection, no session resumed.

wrk cannot make it: after a connection closes it keeps its TLS session (SSL_clear keeps
it) and offers it on the next one, so a server that issues tickets, as nginx and lb-lab
both do, resumes almost every handshake and never signs one. `openssl s_time -new`
never offers a session. It is a C client, one connection at a time, so several run side
by side; each sends `GET / HTTP/1.0` and reads the answer to the end.

Without the openssl program, the built-in generator (lab.bench.loadgen, `fresh`: one
connection per request) is used: it never resumes either, but its Python handshakes
cost more than the server's, so its rates say less.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time

from lab.bench.stats import THROUGHPUT, Sample
from lab.bench.tools import ToolError

TOOL = "openssl s_time"
CLIENTS = 4  # s_time processes side by side: enough to keep one proxy worker busy


def installed() -> bool:
    return shutil.which("openssl") is not None


def s_time_argv(host: str, port: int, duration: float) -> list[str]:
    # -new: a new session for every connection; -www: ask for a page, read it all.
    seconds = str(max(1, round(duration)))
    address = f"{host}:{port}"
    return ["openssl", "s_time", "-connect", address, "-new", "-time", seconds, "-www", "/"]


def parse_s_time(output: str) -> int:
    """The connections one s_time run completed: its first report line says
    `N connections in Ts; R connections/user sec, bytes read B`."""
    match = re.search(r"^(\d+) connections in [\d.]+s;", output, re.M)
    if not match:
        raise ToolError(f"no connection count in s_time output: {output.strip()[-200:]!r}")
    return int(match[1])


def run(target: str, host: str, port: int, duration: float, clients: int = CLIENTS) -> Sample:
    """`clients` s_time processes for `duration` s: full handshakes, one request each."""
    argv = s_time_argv(host, port, duration)
    started = time.monotonic()
    runs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(clients)
    ]
    outputs: list[tuple[int, str, str]] = []
    try:
        for process in runs:
            out, err = process.communicate(timeout=duration + 30)
            outputs.append((process.returncode, out, err))
    except subprocess.TimeoutExpired:
        raise ToolError(f"s_time did not finish within {duration + 30:.0f}s") from None
    finally:
        for process in runs:
            if process.poll() is None:
                process.kill()
                process.wait()
    seconds = time.monotonic() - started
    completed, errors = 0, 0
    for code, out, err in outputs:
        if code != 0 and "connections in" not in out:
            raise ToolError(f"s_time exited {code}: {(err or out).strip()[-200:]}")
        completed += parse_s_time(out)
        errors += out.count("ERROR")  # a connection that failed, as s_time reports it
    nothing = math.nan  # s_time reports no latency distribution
    return Sample(
        target=target,
        phase=THROUGHPUT,
        tool=TOOL,
        requests=completed,
        errors=errors,
        seconds=seconds,
        p50_ms=nothing,
        p90_ms=nothing,
        p99_ms=nothing,
    )
