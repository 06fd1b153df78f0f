"""`lb-lab bench --tls`: HTTPS through lb-lab against nginx and HAProxy, same backends.

Five figures (issue 14 asked for three), each a ratio of lb-lab's requests a second to
its peer's, in rounds that alternate the two so that a noisy neighbour hurts both alike
(the ratio is the median of the per-round ratios):

- **terminate**: Layer 7 with TLS termination, keep-alive, `--connections`
  connections (64 by default), against nginx (one worker, `listen ... ssl`) with
  the same certificate and key; both speak plain HTTP to the toy backends.
- **handshakes**: the same two, every request on a new connection with a full
  handshake: no session is ever offered (lab.bench.full_handshakes).
- **resumed**: the same two, every request on a new connection whose client offers
  its last session, as wrk does: the handshakes resume (no certificate, no signature).
- **passthrough**: Layer 4 reading only the ClientHello's SNI, against HAProxy
  `mode tcp` with `req.ssl_sni` (nbthread 1); the toy backends terminate TLS
  themselves, so both proxies only read a hello and pipe bytes. Keep-alive.
- **passthrough, new connections**: the same, a new connection (and hello) per request.

Beside each ratio it reports each proxy's CPU time per thousand requests (from
/proc), which the backends' own speed and the load tool's cannot hide.

The load tool is wrk when it is installed (one thread, OpenSSL; it does not verify
certificates), else the built-in generator (Python's ssl, verifying against the lab CA;
it never resumes, so then there is no **resumed** figure). Every client asks for the
name `localhost`, which the lab's certificate holds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import ssl
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lab.bench import full_handshakes, loadgen, peers, tools
from lab.bench.runner import cpu_seconds
from lab.bench.stats import Sample
from lab.certificates import LabCertificates, make_certificates
from lab.supervisor import Supervisor

TERMINATE, HANDSHAKES, RESUMED = "terminate", "handshakes", "resumed"
PASSTHROUGH, PASSTHROUGH_NEW = "passthrough", "passthrough, new connections"
# How a figure's clients connect: one keep-alive connection each, a new connection per
# request offering the last session (wrk), or a new connection with a full handshake.
KEEP_ALIVE, NEW_RESUMING, NEW_FULL = "keep-alive", "new, resuming", "new, full handshake"
# The goals, as a share of the peer's requests a second; the other two figures
# are there to explain these.
GOALS = {TERMINATE: 0.8, HANDSHAKES: 0.8, PASSTHROUGH: 0.8}
# The name every client asks for: one the lab's certificate holds and that resolves without
# help (wrk has no --resolve), to 127.0.0.1 (wrk tries the addresses in turn).
SNI = "localhost"


@dataclass
class TlsFigure:
    """One figure: lb-lab and its peer, round by round."""

    name: str
    peer: str
    tool: str = ""  # the load tool of its last round
    rates: dict[str, list[float]] = field(default_factory=dict)
    cpu_ms_per_1k: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, who: str, sample: Sample, cpu_s: float | None) -> None:
        self.rates.setdefault(who, []).append(sample.requests / sample.seconds)
        self.errors[who] = self.errors.get(who, 0) + sample.errors
        if cpu_s is not None and sample.requests:
            self.cpu_ms_per_1k.setdefault(who, []).append(cpu_s * 1e6 / sample.requests)

    def ratio(self) -> float | None:
        """lb-lab's requests a second over its peer's (median of the rounds)."""
        ours, theirs = self.rates.get("lb-lab", []), self.rates.get(self.peer, [])
        pairs = [a / b for a, b in zip(ours, theirs, strict=False) if b]
        return statistics.median(pairs) if pairs else None

    def cpu_ratio(self) -> float | None:
        """The peer's CPU per request over lb-lab's (median of the rounds): the ratio of
        rates the two would reach where the proxy, not the load tool, is the bottleneck."""
        ours, theirs = self.cpu_ms_per_1k.get("lb-lab", []), self.cpu_ms_per_1k.get(self.peer, [])
        pairs = [b / a for a, b in zip(ours, theirs, strict=False) if a]
        return statistics.median(pairs) if pairs else None

    def judged(self) -> float | None:
        """What the goal is judged on: the lower of the two ratios. On two shared cores
        a full handshake costs its client more than its server, so the load tool is the
        bottleneck and both proxies' rates tie; their CPU per request still differs."""
        known = [r for r in (self.ratio(), self.cpu_ratio()) if r is not None]
        return min(known) if known else None

    def as_json(self) -> dict:
        ratio, cpu_ratio, judged, goal = (
            self.ratio(),
            self.cpu_ratio(),
            self.judged(),
            GOALS.get(self.name),
        )
        return {
            "peer": self.peer,
            "tool": self.tool,
            "req_per_s": {who: round(statistics.median(r)) for who, r in self.rates.items()},
            "per_round": {who: [round(x) for x in r] for who, r in self.rates.items()},
            "cpu_ms_per_1k_requests": {
                who: round(statistics.median(c), 1) for who, c in self.cpu_ms_per_1k.items()
            },
            "errors": self.errors,
            "ratio": None if ratio is None else round(ratio, 3),
            "cpu_ratio": None if cpu_ratio is None else round(cpu_ratio, 3),
            "goal": goal,
            "met": None if goal is None or judged is None else judged >= goal,
        }

    def text(self) -> str:
        data = self.as_json()
        rates = ", ".join(f"{who} {rate:,} req/s" for who, rate in data["req_per_s"].items())
        cpu = ", ".join(f"{who} {ms} ms" for who, ms in data["cpu_ms_per_1k_requests"].items())
        ratio, cpu_ratio, goal, met = data["ratio"], data["cpu_ratio"], data["goal"], data["met"]
        verdict = "" if met is None else f"; {'meets' if met else 'misses'} the goal of >= {goal}x"
        shown = "-" if ratio is None else f"{ratio:.2f}x"
        by_cpu = "-" if cpu_ratio is None else f"{cpu_ratio:.2f}x"
        return (
            f"  {self.name} ({self.tool}): {rates}: {shown}\n"
            f"    CPU per 1,000 requests: {cpu}: {by_cpu}{verdict}; errors {data['errors']}"
        )


def main(options: argparse.Namespace) -> int:
    say = (lambda text: print(text, file=sys.stderr)) if options.json else print
    tool = "wrk" if tools.installed("wrk") else "builtin"
    folder = tempfile.mkdtemp(prefix="lb-lab-bench-tls-")
    figures: list[TlsFigure] = []
    notes: list[str] = []
    try:
        certs = make_certificates(Path(folder))
        with Supervisor() as supervisor:
            run = _Runner(supervisor, certs, options, tool, say)
            if peers.installed("nginx"):
                figures += run.terminate()
            else:
                notes.append("nginx is not installed: terminate, handshakes and resumed skipped")
            if peers.installed("haproxy"):
                figures += run.passthrough()
            else:
                notes.append("HAProxy is not installed: passthrough skipped")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result = {
        "tool": tool,
        "connections": options.connections,
        "rounds": options.rounds,
        "duration_s": options.duration,
        "figures": {f.name: f.as_json() for f in figures},
        "notes": notes,
    }
    if options.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"HTTPS, {options.connections} connections, {options.rounds} rounds of "
            f"{options.duration:g} s, load from {tool}"
        )
        for figure in figures:
            print(figure.text())
        for note in notes:
            print(f"  note: {note}")
    return 0


class _Runner:
    def __init__(
        self, supervisor: Supervisor, certs: LabCertificates, options, tool: str, say
    ) -> None:
        self.supervisor = supervisor
        self.certs = certs
        self.options = options
        self.tool = tool
        self.say = say

    def backends(self, prefix: str, tls: bool) -> list[peers.Upstream]:
        """Toy backends; with `tls`, each serves HTTPS with the lab's certificate on its
        TLS port, and that is the address the proxies are given."""
        upstreams = []
        for i in range(1, self.options.backends + 1):
            name = f"{prefix}{i}"
            argv = ["backend", "--name", name, "--port", "0"]
            if tls:
                argv += ["--tls-port", "0", "--tls-cert", str(self.certs.certificate)]
                argv += ["--tls-key", str(self.certs.key)]
            child = self.supervisor.start(name, argv)
            address = child.addresses["tls" if tls else "listen"]
            host, _, port = address.rpartition(":")
            upstreams.append(peers.Upstream(name, host, int(port)))
        return upstreams

    def balancer(self, name: str, upstreams: Sequence[peers.Upstream], settings: dict):
        argv = ["balancer", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
        for u in upstreams:
            argv += ["--backend", f"{u.name}={u.host}:{u.port}"]
        child = self.supervisor.start(name, argv)
        _put_config(child.addresses["admin"], settings)
        host, _, port = child.addresses["listen"].rpartition(":")
        return child.process.pid, (host, int(port))

    def terminate(self) -> list[TlsFigure]:
        upstreams = self.backends("t", tls=False)
        tls = {"mode": "terminate", "certificate": str(self.certs.certificate)}
        settings = {"mode": "http", "tls": {**tls, "key": str(self.certs.key)}}
        lb_pid, lb = self.balancer("lb-tls", upstreams, settings)
        nginx = _start_nginx_tls(upstreams, self.certs)
        try:
            targets = {"lb-lab": (lb_pid, lb), "nginx": (_worker(nginx), nginx.listeners["https"])}
            figures = [self.rounds(TlsFigure(TERMINATE, "nginx"), targets, KEEP_ALIVE)]
            figures.append(self.rounds(TlsFigure(HANDSHAKES, "nginx"), targets, NEW_FULL))
            if self.tool == "wrk":  # the built-in generator never offers a session
                figures.append(self.rounds(TlsFigure(RESUMED, "nginx"), targets, NEW_RESUMING))
        finally:
            nginx.stop()
        return figures

    def passthrough(self) -> list[TlsFigure]:
        upstreams = self.backends("p", tls=True)
        names = [u.name for u in upstreams]
        settings = {
            "mode": "tcp",
            "tls": {"mode": "passthrough"},
            "pools": [{"name": "shop", "backends": names}],
            "rules": [{"name": "shop", "sni": SNI, "pool": "shop"}],
        }
        lb_pid, lb = self.balancer("lb-pass", upstreams, settings)
        haproxy = _start_haproxy_sni(upstreams)
        try:
            targets = {
                "lb-lab": (lb_pid, lb),
                "haproxy": (_worker(haproxy), haproxy.listeners["tcp"]),
            }
            # New connections as wrk makes them (or the built-in generator): each a hello
            # to read and a backend connection to open; the backends do the handshakes.
            again = NEW_RESUMING if self.tool == "wrk" else NEW_FULL
            return [
                self.rounds(TlsFigure(PASSTHROUGH, "haproxy"), targets, KEEP_ALIVE),
                self.rounds(TlsFigure(PASSTHROUGH_NEW, "haproxy"), targets, again),
            ]
        finally:
            haproxy.stop()

    def rounds(self, figure: TlsFigure, targets: dict, connecting: str) -> TlsFigure:
        order = list(targets)
        for round_ in range(self.options.rounds):
            for who in order if round_ % 2 == 0 else order[::-1]:
                pid, (host, port) = targets[who]
                before = cpu_seconds(pid)
                sample = self.load(who, host, port, connecting)
                after = cpu_seconds(pid)
                used = None if before is None or after is None else after - before
                figure.add(who, sample, used)
                self.say(
                    f"round {round_ + 1}: {figure.name} {who}: "
                    f"{sample.requests / sample.seconds:,.0f} req/s, {sample.errors} errors"
                )
        figure.tool = sample.tool
        return figure

    def load(self, who: str, host: str, port: int, connecting: str) -> Sample:
        connections, duration = self.options.connections, self.options.duration
        if connecting == NEW_FULL and full_handshakes.installed():
            return full_handshakes.run(who, host, port, duration)
        if self.tool == "wrk" and connecting != NEW_FULL:  # wrk would resume: never full
            headers = ("Connection: close",) if connecting == NEW_RESUMING else ()
            url = f"https://{SNI}:{port}/"
            return tools.run("wrk", who, url, connections, duration, headers=headers)
        context = ssl.create_default_context(cafile=str(self.certs.ca))
        fresh = connecting != KEEP_ALIVE  # the built-in generator never offers a session
        return loadgen.closed_loop(
            who, host, port, connections, duration, tls=context, server_hostname=SNI, fresh=fresh
        )


def _put_config(admin: str, settings: dict) -> None:
    host, _, port = admin.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("PUT", "/config", json.dumps(settings).encode())
        answer = connection.getresponse()
        body = answer.read().decode(errors="replace")
    finally:
        connection.close()
    if answer.status != 200:
        raise RuntimeError(f"the balancer refused {settings}: {body}")


def _worker(peer: peers.Peer) -> int:
    return peer.worker_pids()[0]


def _start_nginx_tls(upstreams: Sequence[peers.Upstream], certs: LabCertificates) -> peers.Peer:
    workdir = peers._workdir("nginx-tls")
    port = peers.free_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as out:
        out.write(
            nginx_tls_config(workdir, port, upstreams, str(certs.certificate), str(certs.key))
        )
    return peers._start(
        "nginx",
        peers.nginx_version(),
        peers.nginx_argv(workdir, conf),
        workdir,
        {"https": ("127.0.0.1", port)},
    )


def nginx_tls_config(
    workdir: str, port: int, upstreams: Sequence[peers.Upstream], certificate: str, key: str
) -> str:
    """peers.nginx_config with the listener made `ssl`: one worker, keep-alive both ways."""
    plain = peers.nginx_config(workdir, port, upstreams, peers._nginx_temp_modules())
    return plain.replace(
        f"        listen 127.0.0.1:{port};\n",
        f"        listen 127.0.0.1:{port} ssl;\n"
        f"        ssl_certificate {certificate};\n"
        f"        ssl_certificate_key {key};\n"
        "        ssl_protocols TLSv1.2 TLSv1.3;\n",
    )


def _start_haproxy_sni(upstreams: Sequence[peers.Upstream]) -> peers.Peer:
    workdir = peers._workdir("haproxy-sni")
    port = peers.free_port()
    conf = os.path.join(workdir, "haproxy.cfg")
    with open(conf, "w") as out:
        out.write(haproxy_sni_config(port, upstreams))
    return peers._start(
        "haproxy",
        peers.haproxy_version(),
        peers.haproxy_argv(conf),
        workdir,
        {"tcp": ("127.0.0.1", port)},
    )


def haproxy_sni_config(port: int, upstreams: Sequence[peers.Upstream]) -> str:
    """One thread; Layer 4, waiting for the ClientHello and routing on its SNI."""
    servers = "".join(f"    server {u.name} {u.host}:{u.port}\n" for u in upstreams)
    return f"""\
global
    nbthread 1
    maxconn 4096

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend lab_sni
    bind 127.0.0.1:{port}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req_ssl_hello_type 1 }}
    use_backend shop if {{ req.ssl_sni -i {SNI} }}

backend shop
    balance roundrobin
{servers}"""
