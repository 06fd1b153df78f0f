"""The peers lb-lab is measured against: nginx (Layer 7) and HAProxy (Layer 7 and Layer 4).

Each is given a generated config in its own temporary folder, tuned the way an
operator would tune it for keep-alive proxying on loopback, with one worker or
thread like the single lb-lab process, on the same backends as lb-lab.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from lab.bench.tether import tethered

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
KEEPALIVE = 64  # idle upstream connections nginx keeps, as the issue asks


@dataclass(frozen=True, slots=True)
class Upstream:
    """One backend the peers proxy to."""

    name: str
    host: str
    port: int


class PeerError(RuntimeError):
    """A peer proxy rejected its config or did not start listening."""


@dataclass
class Peer:
    """One running outside proxy and where its listeners are."""

    name: str
    version: str
    process: subprocess.Popen
    workdir: str
    listeners: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """The processes doing the proxying (nginx's worker, HAProxy itself)."""
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as listing:
                children = [int(pid) for pid in listing.read().split()]
        except OSError:
            children = []
        return children or [self.pid]

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def installed(program: str) -> bool:
    return shutil.which(program) is not None


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port free right now (peers cannot report a port 0 bind back to us)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def nginx_version() -> str:
    done = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return done.stderr.strip().removeprefix("nginx version: ") or "nginx"


def haproxy_version() -> str:
    done = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=False)
    words = done.stdout.split()
    return f"HAProxy {words[2]}" if len(words) > 2 else "HAProxy"


def _nginx_temp_modules() -> list[str]:
    """The temp-path kinds this nginx build has (nginx-light lacks some modules)."""
    done = subprocess.run(["nginx", "-V"], capture_output=True, text=True, check=False)
    built = done.stderr
    kinds = ["client_body", "proxy"]
    kinds += [k for k in ("fastcgi", "uwsgi", "scgi") if f"--without-http_{k}_module" not in built]
    return kinds


def nginx_config(
    workdir: str, port: int, upstreams: Sequence[Upstream], temp_kinds: Sequence[str] = ()
) -> str:
    """One worker, keep-alive both ways, no logging: nginx as fast as it goes on one core."""
    servers = "".join(f"        server {u.host}:{u.port};\n" for u in upstreams)
    temps = "".join(f"    {kind}_temp_path {workdir}/{kind};\n" for kind in temp_kinds)
    return f"""\
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
{temps}    keepalive_requests 1000000;
    keepalive_timeout 60s;
    upstream lab_backends {{
{servers}        keepalive {KEEPALIVE};
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://lab_backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def haproxy_config(http_port: int, tcp_port: int, upstreams: Sequence[Upstream]) -> str:
    """One thread; an HTTP proxy that reuses backend connections, and a plain TCP proxy."""

    def servers(check: str = "") -> str:
        return "".join(f"    server {u.name} {u.host}:{u.port}{check}\n" for u in upstreams)

    return f"""\
global
    nbthread 1
    maxconn 4096

defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend lab_http
    mode http
    bind 127.0.0.1:{http_port}
    default_backend lab_http_backends

backend lab_http_backends
    mode http
    balance roundrobin
    http-reuse always
{servers()}
frontend lab_tcp
    mode tcp
    bind 127.0.0.1:{tcp_port}
    default_backend lab_tcp_backends

backend lab_tcp_backends
    mode tcp
    balance roundrobin
{servers()}"""


def nginx_argv(workdir: str, conf: str, test: bool = False) -> list[str]:
    argv = ["nginx", "-p", workdir, "-c", conf, "-e", f"{workdir}/error.log"]
    return [*argv, "-t", "-q"] if test else [*argv, "-g", "daemon off;"]


def haproxy_argv(conf: str, test: bool = False) -> list[str]:
    return ["haproxy", "-c", "-q", "-f", conf] if test else ["haproxy", "-db", "-f", conf]


def check(argv: list[str]) -> None:
    """Raise PeerError with the program's own words unless it accepts its config."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        words = (done.stderr or done.stdout).strip().splitlines()
        raise PeerError(f"{argv[0]} rejected its config: {' / '.join(words[-3:])}")


def write_nginx(upstreams: Sequence[Upstream]) -> tuple[str, str, int]:
    """A fresh work folder holding an nginx config; returns (folder, config, port)."""
    workdir = _workdir("nginx")
    port = free_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as out:
        out.write(nginx_config(workdir, port, upstreams, _nginx_temp_modules()))
    return workdir, conf, port


def write_haproxy(upstreams: Sequence[Upstream]) -> tuple[str, str, int, int]:
    """A fresh work folder holding an HAProxy config; returns (folder, config, http, tcp)."""
    workdir = _workdir("haproxy")
    http_port, tcp_port = free_port(), free_port()
    while tcp_port == http_port:
        tcp_port = free_port()
    conf = os.path.join(workdir, "haproxy.cfg")
    with open(conf, "w") as out:
        out.write(haproxy_config(http_port, tcp_port, upstreams))
    return workdir, conf, http_port, tcp_port


def start_nginx(upstreams: Sequence[Upstream]) -> Peer:
    workdir, conf, port = write_nginx(upstreams)
    return _start(
        "nginx", nginx_version(), nginx_argv(workdir, conf), workdir, {"http": ("127.0.0.1", port)}
    )


def start_haproxy(upstreams: Sequence[Upstream]) -> Peer:
    workdir, conf, http_port, tcp_port = write_haproxy(upstreams)
    listeners = {"http": ("127.0.0.1", http_port), "tcp": ("127.0.0.1", tcp_port)}
    return _start("haproxy", haproxy_version(), haproxy_argv(conf), workdir, listeners)


def _workdir(name: str) -> str:
    workdir = tempfile.mkdtemp(prefix=f"lb-lab-bench-{name}-")
    # Run as root, nginx's workers drop to an unprivileged user that must reach its temp folders.
    os.chmod(workdir, 0o755)
    return workdir


def _start(
    name: str, version: str, argv: list[str], workdir: str, listeners: dict[str, tuple[str, int]]
) -> Peer:
    with open(os.path.join(workdir, "output.log"), "w") as log:
        process = subprocess.Popen(
            tethered(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal Ctrl-C reaches us; we stop the peer in order
        )
    peer = Peer(name, version, process, workdir, listeners)
    try:
        for host, port in listeners.values():
            _wait_listening(peer, host, port)
    except PeerError:
        peer.stop()
        raise
    return peer


def _wait_listening(peer: Peer, host: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if peer.process.poll() is not None:
            with open(os.path.join(peer.workdir, "output.log")) as log:
                said = " / ".join(log.read().strip().splitlines()[-3:])
            raise PeerError(f"{peer.name} exited {peer.process.returncode}: {said}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.02)
    raise PeerError(f"{peer.name} did not listen on {host}:{port} within {START_TIMEOUT_S:.0f}s")
