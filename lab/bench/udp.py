"""`lb-lab bench --udp`: lb-lab's mode udp against nginx's stream UDP proxy, same backends.

Two figures (issue 15):
- request/response datagrams per second through each proxy with `--udp-flows`
  concurrent flows (64 by default), from lab.bench.udp_load, in rounds that
  alternate the two so that a noisy neighbour hurts both alike; the ratio is
  the median of the per-round ratios (goal: at least 1.0); with it, each proxy's
  CPU time (user + system, from /proc) per answered exchange, which the rest of
  a busy machine moves far less than it moves the throughput;
- the balancer's memory per 10,000 live flows: its resident memory before and
  after `--udp-memory-flows` flows were opened and answered (and so are held
  until their idle timeout), scaled to 10,000. nginx's worker is measured the
  same way, for comparison.

nginx runs with one worker, like the single lb-lab process, from a generated
config (`stream { upstream ...; server { listen ... udp; proxy_pass ...; } }`).
It needs the stream module (Debian: libnginx-mod-stream); without it the nginx
side is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from lab.bench import peers
from lab.bench.admin import get_json, split_address
from lab.bench.runner import rss_kb
from lab.bench.tether import tethered
from lab.bench.udp_load import UdpRun, hold_flows, run_load
from lab.supervisor import Supervisor

STREAM_MODULES = (
    "/usr/lib/nginx/modules/ngx_stream_module.so",
    "/usr/lib64/nginx/modules/ngx_stream_module.so",
)
FLOW_IDLE_MS = 600_000  # flows outlive the whole benchmark: the memory figure counts them all
PER = 10_000  # memory is reported per this many flows


@dataclass
class UdpReport:
    flows: int
    duration: float
    rounds: int
    build: str = ""
    nginx: str = ""
    runs: dict[str, list[UdpRun]] = field(default_factory=dict)
    memory_kb_per_10k: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def median(self, name: str) -> float | None:
        runs = self.runs.get(name) or []
        return statistics.median(r.per_second for r in runs) if runs else None

    def cpu_us(self, name: str) -> float | None:
        values = [v for r in self.runs.get(name) or [] if (v := r.cpu_us) is not None]
        return round(statistics.median(values), 2) if values else None

    def ratio(self) -> float | None:
        ours, theirs = self.runs.get("lb-udp") or [], self.runs.get("nginx-udp") or []
        paired = zip(ours, theirs, strict=False)  # a round may have lost its nginx run
        pairs = [a.per_second / b.per_second for a, b in paired if b.per_second]
        return statistics.median(pairs) if pairs else None

    def as_json(self) -> dict:
        return {
            "flows": self.flows,
            "duration_s": self.duration,
            "rounds": self.rounds,
            "build": self.build,
            "nginx": self.nginx,
            "datagrams_per_s": {name: self.median(name) for name in self.runs},
            "per_round": {
                name: [round(r.per_second, 1) for r in runs] for name, runs in self.runs.items()
            },
            "lost": {name: sum(r.lost for r in runs) for name, runs in self.runs.items()},
            "p50_ms": {name: _p50(runs) for name, runs in self.runs.items()},
            "cpu_us_per_exchange": {name: self.cpu_us(name) for name in self.runs},
            "ratio_lb_over_nginx": self.ratio(),
            "memory_kb_per_10k_flows": self.memory_kb_per_10k,
            "notes": self.notes,
        }

    def text(self) -> str:
        lines = [
            f"UDP request/response, {self.flows} concurrent flows, {self.rounds} rounds of "
            f"{self.duration:g} s (lb-lab: {self.build}; {self.nginx or 'no nginx'})",
        ]
        for name, runs in self.runs.items():
            p50, cpu = _p50(runs), self.cpu_us(name)
            lines.append(
                f"  {name:10} {self.median(name) or 0:>10,.0f} datagrams/s (median)  "
                f"p50 {p50 if p50 is not None else '-'} ms  "
                f"cpu {f'{cpu:.1f}' if cpu is not None else '-'} us/exchange  "
                f"lost {sum(r.lost for r in runs)}  "
                f"rounds {', '.join(f'{r.per_second:,.0f}' for r in runs)}"
            )
        ratio = self.ratio()
        if ratio is not None:
            verdict = "meets" if ratio >= 1.0 else "misses"
            lines.append(f"  lb-udp / nginx-udp: {ratio:.2f}x ({verdict} the goal of >= 1.0x)")
        for name, kb in self.memory_kb_per_10k.items():
            lines.append(f"  memory per {PER:,} live flows, {name}: {kb / 1024:.1f} MiB")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _p50(runs: Sequence[UdpRun]) -> float | None:
    values = [v for r in runs if (v := r.percentile(0.5)) is not None]
    return round(statistics.median(values), 3) if values else None


def stream_module() -> str | None:
    return next((path for path in STREAM_MODULES if os.path.exists(path)), None)


def nginx_udp_config(workdir: str, port: int, upstreams: Sequence[peers.Upstream], module: str):
    """One worker and a UDP stream proxy: sessions (flows) last until proxy_timeout."""
    servers = "".join(f"        server {u.host}:{u.port};\n" for u in upstreams)
    return f"""\
load_module {module};
worker_processes 1;
worker_rlimit_nofile 65536;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{
    worker_connections 32768;
}}
stream {{
    upstream lab_backends {{
{servers}    }}
    server {{
        listen 127.0.0.1:{port} udp rcvbuf=4m;  # as lb-lab's listener
        proxy_pass lab_backends;
        proxy_timeout {FLOW_IDLE_MS // 1000}s;
    }}
}}
"""


def start_nginx_udp(upstreams: Sequence[peers.Upstream], module: str) -> peers.Peer:
    workdir = peers._workdir("nginx-udp")
    port = peers.free_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as out:
        out.write(nginx_udp_config(workdir, port, upstreams, module))
    peers.check(peers.nginx_argv(workdir, conf, test=True))
    process = subprocess.Popen(
        tethered(peers.nginx_argv(workdir, conf)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    listeners = {"udp": ("127.0.0.1", port)}
    peer = peers.Peer("nginx", peers.nginx_version(), process, workdir, listeners)
    try:
        wait_answering(("127.0.0.1", port))
    except TimeoutError:
        peer.stop()
        raise
    return peer


def wait_answering(target: tuple[str, int], timeout: float = 10.0) -> None:
    """A UDP listener cannot be connected to: wait until a datagram through it is answered."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        while time.monotonic() < deadline:
            probe.sendto(b"ready?", target)
            try:
                probe.recvfrom(2048)
                return
            except (TimeoutError, OSError):
                continue
    raise TimeoutError(f"nothing answered through {target[0]}:{target[1]} within {timeout:.0f}s")


def memory_per_10k(pid: int, target: tuple[str, int], count: int) -> float | None:
    """kB of resident memory the process grew by while `count` flows were opened, per 10k."""
    before = rss_kb(pid)
    socks = hold_flows(target, count)
    try:
        time.sleep(0.5)  # let the last replies' bookkeeping settle
        after = rss_kb(pid)
    finally:
        for sock in socks:
            sock.close()
    if before is None or after is None:
        return None
    return (after - before) * PER / count


def main(options: argparse.Namespace) -> int:
    say = (lambda text: print(text, file=sys.stderr)) if options.json else print
    report = UdpReport(options.udp_flows, options.duration, options.rounds)
    module = stream_module()
    with Supervisor() as supervisor:
        upstreams = []
        for i in range(1, options.backends + 1):
            child = supervisor.start(f"b{i}", ["backend", "--name", f"b{i}", "--port", "0"])
            host, port = split_address(child.addresses["listen"])
            upstreams.append(peers.Upstream(f"b{i}", host, port))
        args = ["balancer", "--mode", "udp", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
        args += ["--udp-idle-timeout-ms", str(FLOW_IDLE_MS), "--udp-max-flows", "100000"]
        args += [a for u in upstreams for a in ("--backend", f"{u.name}={u.host}:{u.port}")]
        balancer = supervisor.start("lb-udp", args)
        lb_target = split_address(balancer.addresses["listen"])
        report.build = get_json(*split_address(balancer.addresses["admin"]), "/state")["build"]
        targets = {"lb-udp": (lb_target, balancer.pid)}
        nginx = None
        if not peers.installed("nginx"):
            report.notes.append("nginx is not installed: no nginx-udp runs")
        elif module is None:
            report.notes.append(
                "nginx has no stream module here (Debian: apt-get install libnginx-mod-stream)"
            )
        else:
            nginx = start_nginx_udp(upstreams, module)
            report.nginx = nginx.version
            targets["nginx-udp"] = (nginx.listeners["udp"], nginx.worker_pids()[0])
        try:
            _rounds(report, targets, options, say)
            for name, (target, pid) in targets.items():
                say(f"{name}: opening {options.udp_memory_flows:,} flows to measure memory")
                kb = memory_per_10k(pid, target, options.udp_memory_flows)
                if kb is not None:
                    report.memory_kb_per_10k[name] = round(kb, 1)
        finally:
            if nginx is not None:
                nginx.stop()
    if options.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.text())
    return 0


def _rounds(report: UdpReport, targets: dict, options: argparse.Namespace, say) -> None:
    names = list(targets)
    for round_number in range(options.rounds):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in order:
            target, pid = targets[name]
            run = run_load(target, options.udp_flows, options.duration, pid=pid)
            report.runs.setdefault(name, []).append(run)
            cpu = f", cpu {run.cpu_us:.1f} us/exchange" if run.cpu_us is not None else ""
            say(f"round {round_number + 1} {name}: {run.per_second:,.0f} datagrams/s{cpu}")
