"""A whole lab for a benchmark: one `lb-lab serve` on free ports, run as a child process.

`lb-lab bench --web`, `--viewers` and `--recording` (lab.bench.web, room,
recording) each start one, read the addresses it prints (the page's URL, the
balancer's admin API, the traffic generator's control API) and stop it at the
end; it is tethered, so it dies with the benchmark too.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

from lab.bench.admin import get_json, split_address
from lab.bench.tether import tethered

STOP_TIMEOUT_S = 10.0


class WebBenchError(RuntimeError):
    """The lab or the page did not do what the benchmark needs; the message says what."""


class LabProcess:
    """One `lb-lab serve` on free ports, tied to this process's life; its addresses as printed."""

    def __init__(
        self, backends: int, compare: tuple[str, str] | None = None, extra: tuple[str, ...] = ()
    ) -> None:
        argv = [sys.executable, "-m", "lab", "serve", "--port", "0", "--balancer-port", "0"]
        argv += ["--backend-port", "0", "--backends", str(backends), *extra]
        if compare:
            argv += ["--compare", ",".join(compare)]
        self.process = subprocess.Popen(
            tethered(argv),  # the same pid once it execs; SIGTERMed if we die
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.output: list[str] = []
        self.url = self.admin = self.traffic = ""
        self.url_at = 0.0  # wall clock when it printed its URL
        self.printed_url = threading.Event()
        self.printed_all = threading.Event()  # the addresses of its parts, once they run
        threading.Thread(target=self._drain, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for(self, printed: threading.Event, what: str, timeout: float) -> None:
        if not printed.wait(timeout) or self.process.poll() is not None:
            output = "".join(self.output)[-2000:]
            raise WebBenchError(f"lb-lab serve did not print {what}:\n{output}")

    def _drain(self) -> None:
        """Read what the lab prints, to the end, so that it never blocks on a full pipe."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if url := re.search(r"Load Balancing Lab: (http://\S+)", line):
                self.url, self.url_at = url.group(1), time.time()
                self.printed_url.set()
            elif admin := re.search(r"\(admin (\S+)\)", line):
                self.admin = admin.group(1)
            elif traffic := re.search(r"control (\S+)", line):
                self.traffic = traffic.group(1)
            elif "Press Ctrl-C" in line:
                self.printed_all.set()
        self.printed_url.set()  # it exited: the waits see that
        self.printed_all.set()

    def balancer_state(self) -> dict:
        return get_json(*split_address(self.admin), "/state")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
