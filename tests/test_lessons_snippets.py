"""The real-world config shown next to each lesson: what it says, and that nginx and HAProxy
accept it.

`nginx -t` and `haproxy -c` run only where they are installed (CI installs
both); without them those tests are skipped, the rest still run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from lab.balancer.algorithms import ALGORITHM_NAMES
from lab.lessons.catalog import Catalog
from lab.lessons.snippets import from_state, haproxy_config, nginx_config, snippets

LESSONS = Catalog(drafts=True).lessons()  # drafts too: their settings must read as config
NGINX = shutil.which("nginx")
HAPROXY = shutil.which("haproxy")
STREAM_MODULES = (
    "/usr/lib/nginx/modules/ngx_stream_module.so",
    "/usr/lib64/nginx/modules/ngx_stream_module.so",
)
BACKENDS = [
    {"name": "b1", "address": "127.0.0.1:9001", "weight": 5},
    {"name": "b2", "address": "127.0.0.1:9002", "max_conns": 4},
    {"name": "b3", "address": "127.0.0.1:9003", "backup": True},
]


def configs() -> list[tuple[str, dict]]:
    """Every lesson's settings, and every algorithm, mode and hash key on its own."""
    cases = []
    for lesson in LESSONS:
        setup = lesson.setup
        cases.append((lesson.slug, setup.balancer_document(setup.placeholder_addresses())))
    for mode in ("http", "tcp"):
        for algorithm in ALGORITHM_NAMES:
            keys = ("client-ip", "path", "header:X-User", "cookie:session")
            for key in keys if algorithm == "consistent-hash" else ("client-ip",):
                config = {"mode": mode, "algorithm": algorithm, "hash_key": key}
                cases.append((f"{mode}-{algorithm}-{key}", config | {"backends": BACKENDS}))
    extras = {
        "health": {"enabled": True, "path": "/health", "interval_ms": 500, "rise": 2, "fall": 3},
        "passive": {"max_fails": 2, "fail_timeout_s": 0.5},
    }
    for mode, sticky in (("http", "cookie"), ("tcp", "source")):
        config = {"mode": mode, "algorithm": "round-robin", "backends": BACKENDS, **extras}
        cases.append((f"{mode}-checks-{sticky}", config | {"sticky": {"mode": sticky}}))
    return cases


CASES = configs()


def test_each_algorithm_reads_as_its_real_world_equivalent():
    def both(algorithm: str, mode: str = "http", key: str = "client-ip") -> dict:
        config = {"mode": mode, "algorithm": algorithm, "hash_key": key, "backends": BACKENDS}
        return snippets(config)

    assert "least_conn;" in both("least-connections")["nginx"]
    assert "balance leastconn" in both("least-connections")["haproxy"]
    assert "random two least_conn;" in both("power-of-two-choices")["nginx"]
    assert "balance random(2)" in both("power-of-two-choices")["haproxy"]
    assert "hash $remote_addr;" in both("ip-hash")["nginx"]
    assert "hash $http_x_user consistent;" in both("consistent-hash", key="header:X-User")["nginx"]
    assert "balance hdr(X-User)" in both("consistent-hash", key="header:X-User")["haproxy"]
    cookie = both("consistent-hash", key="cookie:session")
    assert "hash $cookie_session consistent;" in cookie["nginx"]
    assert "balance hash req.cook(session)" in cookie["haproxy"]
    assert "hash-type consistent" in both("consistent-hash", key="path")["haproxy"]
    assert "NGINX Plus" in both("least-response-time")["nginx"]
    round_robin = both("round-robin", mode="tcp")
    assert "stream" in round_robin["nginx"] and "keepalive" not in round_robin["nginx"]
    assert "mode tcp" in round_robin["haproxy"]
    assert "server 127.0.0.1:9001 weight=5;  # b1" in round_robin["nginx"]
    assert "server b2 127.0.0.1:9002 maxconn 4" in round_robin["haproxy"]
    assert "server b3 127.0.0.1:9003 backup" in round_robin["haproxy"]


def test_snippets_follow_the_running_balancers_state():
    state = {
        "mode": "http",
        "algorithm": "least-connections",
        "hash_key": "client-ip",
        "backends": [{"name": "b1", "address": "127.0.0.1:40001", "weight": 3, "total": 9}],
        "settings": {"health": {"enabled": True, "path": "/up", "interval_ms": 1000}},
    }
    shown = snippets(from_state(state))
    assert "server 127.0.0.1:40001 weight=3;  # b1" in shown["nginx"]
    assert "option httpchk GET /up" in shown["haproxy"]
    assert "check inter 1000ms" in shown["haproxy"]


def stream_module() -> str | None:
    return next((path for path in STREAM_MODULES if Path(path).exists()), None)


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
@pytest.mark.parametrize("name, config", CASES, ids=[name for name, _ in CASES])
def test_nginx_accepts_the_upstream_block(tmp_path, name, config):
    snippet = snippets(config)["nginx"]
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_config(snippet, config["mode"], str(tmp_path), stream_module()))
    result = subprocess.run(
        [NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "e.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, f"{result.stderr}\n{conf.read_text()}"


@pytest.mark.skipif(HAPROXY is None, reason="HAProxy is not installed")
@pytest.mark.parametrize("name, config", CASES, ids=[name for name, _ in CASES])
def test_haproxy_accepts_the_backend_section(tmp_path, name, config):
    snippet = snippets(config)["haproxy"]
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(haproxy_config(snippet, config["mode"]))
    result = subprocess.run(
        [HAPROXY, "-c", "-f", str(conf)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{conf.read_text()}"
