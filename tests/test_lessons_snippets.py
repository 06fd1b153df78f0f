"""The real-world config shown next to each lesson: what it says, and that nginx and HAProxy
accept it.

`nginx -t` and `haproxy -c` run only where they are installed (CI installs
both); without them those tests are skipped, the rest still run. A snippet may
use directives newer than the installed nginx (Debian 12's is 1.22; `sticky`
needs 1.29.6, `least_time` 1.31.0): those lines say so, and `nginx -t` checks
the snippet with them commented out (for_nginx_version), which is all an
older nginx can check; test_version_marked_lines_* checks what they say.
Pools and routing rules have their own file (test_lessons_snippets_rules.py),
as has HTTPS (test_lessons_snippets_tls.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lab.balancer.algorithms import ALGORITHM_NAMES
from lab.lessons.catalog import Catalog
from lab.lessons.snippet_check import haproxy_config, nginx_config
from lab.lessons.snippet_nginx import for_nginx_version
from lab.lessons.snippets import from_state, snippets

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
    for algorithm in ALGORITHM_NAMES:
        config = {"mode": "udp", "algorithm": algorithm, "backends": BACKENDS}
        cases.append((f"udp-{algorithm}", config))
    cases.append(("udp-per-datagram", {"mode": "udp", "backends": BACKENDS, **extras,
                  "udp": {"idle_timeout_ms": 2500, "per_datagram": True}}))  # fmt: skip
    cases.append(("http-everything", EVERYTHING))
    cases.append(("tcp-everything", TCP_EVERYTHING))
    proxy = {"proxy_protocol": {"accept": True, "send": "v2", "trusted": "127.0.0.0/8, ::1"}}
    cases.append(("http-everything-proxy-protocol", EVERYTHING | proxy))
    cases.append(("tcp-everything-proxy-protocol", TCP_EVERYTHING | proxy))
    plain = {"algorithm": "ip-hash", "backends": BACKENDS}
    cases.append(("http-proxy-protocol", {"mode": "http", **plain, **proxy}))
    cases.append(("tcp-send-proxy-v1", {"mode": "tcp", **plain,
                  "proxy_protocol": {"send": "v1"}}))  # fmt: skip
    return cases


FOUR = [*BACKENDS, {"name": "b4", "address": "127.0.0.1:9004"}]
RULES = [
    {"name": "canary", "header": "X-Canary: 1", "pool": "canary"},
    {"name": "beta", "cookie": "beta=yes", "method": "GET", "pool": "canary"},
    {"name": "debug", "header": "X-Debug", "pool": "canary"},
    {"name": "tester", "cookie": "tester", "pool": "canary"},
    {"name": "admin", "host": "Admin.Example", "path_prefix": "/admin", "pool": "api"},
    {"name": "api", "path_prefix": "/api", "pool": "api"},
    {"name": "api_v2", "path_prefix": "/api/v2", "pool": "static"},  # never: /api came first
    {"path_prefix": "/static", "pool": "static"},  # unnamed: the balancer calls it rule8
    {"name": "writes", "method": "POST", "pool": "api"},
]
EVERYTHING = {
    "mode": "http",
    "algorithm": "least-connections",
    "backends": FOUR,
    "health": {"enabled": True, "interval_ms": 1000, "timeout_ms": 300, "rise": 2, "fall": 3},
    "passive": {"max_fails": 3, "fail_timeout_s": 4.5, "on_5xx": True},
    "retries": {"tries": 2, "non_idempotent": True, "budget_percent": 20, "min_per_s": 0},
    "sticky": {"mode": "cookie", "cookie": "LAB"},
    "timeouts": {"connect_ms": 500, "client_header_ms": 2000, "idle_ms": 120_000,
                 "backend_response_ms": 30_000, "queue_ms": 250, "tunnel_idle_ms": 300_000},
    "slow_start_s": 20,
    "pools": [
        {"name": "api", "backends": ["b1", "b2"], "algorithm": "consistent-hash",
         "hash_key": "header:X-User"},
        {"name": "static", "backends": ["b3"]},
        {"name": "canary", "backends": ["b4"], "algorithm": "random"},
    ],
    "rules": RULES,
}  # fmt: skip
TCP_EVERYTHING = {
    "mode": "tcp",
    "algorithm": "ip-hash",
    "backends": BACKENDS,
    "health": {"enabled": True, "type": "http", "interval_ms": 200, "timeout_ms": 150},
    "retries": {"tries": 1},
    "sticky": {"mode": "source", "expire_s": 90},
    "timeouts": {"connect_ms": 700, "idle_ms": 5000},
}


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
    least_time = both("least-response-time")["nginx"]
    assert "upstream lab {\n    least_time last_byte;  # nginx 1.31.0+\n" in least_time
    assert "NGINX Plus" not in least_time and "least_conn" not in least_time
    assert "# needs nginx 1.31.0 or later" in least_time
    assert "balance leastconn" in both("least-response-time")["haproxy"]
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
    assert "check inter 1s" in shown["haproxy"]


def test_health_retries_sticky_and_timeouts_read_as_the_peers_write_them():
    shown = snippets(EVERYTHING)
    nginx, haproxy = shown["nginx"], shown["haproxy"]
    assert "option httpchk GET /health" in haproxy
    assert "timeout check 300ms" in haproxy
    assert (
        "server b1 127.0.0.1:9001 weight 5 cookie b1 slowstart 20s check inter 1s rise 2 fall 3"
    ) in haproxy
    assert "# active health checks (health_check): NGINX Plus only;" in nginx
    assert "server 127.0.0.1:9002 max_conns=4 max_fails=3 fail_timeout=5s;  # b2" in nginx
    assert "server b3 127.0.0.1:9003 backup cookie b3" in haproxy
    assert "cookie LAB insert indirect nocache" in haproxy
    # sticky wraps the method set before it, so it must come after least_conn
    assert "upstream lab {\n    least_conn;\n    sticky cookie LAB;  # nginx 1.29.6+\n" in nginx
    assert "# slow_start: NGINX Plus only" in nginx and "sticky cookie: NGINX Plus" not in nginx
    assert "retries 1\n    option redispatch" in haproxy
    assert "proxy_next_upstream error timeout non_idempotent;" in nginx
    assert "proxy_next_upstream_tries 2;" in nginx
    budget = "retry budget (20% of requests + 0/s): no such setting here; Envoy's retry_budget"
    assert f"\n# {budget}" in nginx and f"\n    # {budget}" in haproxy
    # X-Forwarded-For is configured, not given: the lab adds it, so the snippets say so
    assert "\nproxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n" in nginx
    assert "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n" in nginx
    assert "    option forwardfor  # X-Forwarded-For, as the lab adds\n" in haproxy
    for line in (
        "proxy_connect_timeout 500ms;",
        "client_header_timeout 2s;",
        "keepalive_timeout 2m;",
        "proxy_read_timeout 30s;",
    ):
        assert line in nginx
    for line in (
        "timeout connect 500ms",
        "timeout http-request 2s",
        "timeout http-keep-alive 2m",
        "timeout server 30s",
        "timeout queue 250ms",
    ):
        assert line in haproxy
    tcp = snippets(TCP_EVERYTHING)
    assert "stick-table type ip size 100k expire 90s\n    stick on src" in tcp["haproxy"]
    assert "option httpchk GET /health" in tcp["haproxy"]  # an HTTP check of a TCP service
    assert "retries 0" in tcp["haproxy"] and "redispatch" not in tcp["haproxy"]
    assert "# no stick table in nginx" in tcp["nginx"] and "sticky cookie" not in tcp["nginx"]
    assert "proxy_next_upstream off;" in tcp["nginx"] and "keepalive_timeout" not in tcp["nginx"]
    assert "X-Forwarded-For" not in tcp["nginx"] and "forwardfor" not in tcp["haproxy"]
    quiet = snippets({"mode": "http", "algorithm": "round-robin", "backends": BACKENDS})
    assert "NGINX Plus" not in quiet["nginx"] and "check" not in quiet["haproxy"]
    assert "timeout" not in quiet["haproxy"] and "_timeout" not in quiet["nginx"]
    assert "budget" not in quiet["haproxy"] and "budget" not in quiet["nginx"]


def test_websockets_pass_as_nginx_and_haproxy_are_told_to_pass_them():
    """nginx drops Upgrade and Connection (hop-by-hop) unless told; HAProxy needs only its
    tunnel timeout. Layer 4 carries any bytes: nothing to say there."""
    shown = snippets(EVERYTHING)
    nginx, haproxy = shown["nginx"], shown["haproxy"]
    told = 'map $http_upgrade $connection_upgrade {\n    default upgrade;\n    ""      "";'
    assert told in nginx
    assert "\nproxy_http_version 1.1;\nproxy_set_header Upgrade $http_upgrade;\n" in nginx
    assert "\nproxy_set_header Connection $connection_upgrade;\n" in nginx
    # The router's location has proxy_set_header lines of its own, so it repeats them.
    assert "        proxy_set_header Connection $connection_upgrade;\n    }" in nginx
    assert 'proxy_set_header Connection "";' not in nginx  # that would end every WebSocket
    assert "location /ws/ { proxy_pass http://lab; proxy_read_timeout 5m; }" in nginx
    assert haproxy.count("    timeout tunnel 5m") == len(EVERYTHING["pools"]) + 1  # each backend
    quiet = snippets({"mode": "http", "algorithm": "round-robin", "backends": BACKENDS})
    assert "$connection_upgrade;" in quiet["nginx"] and "proxy_read_timeout" not in quiet["nginx"]
    assert "tunnel" not in quiet["haproxy"]  # the lab's default hour is not written out
    tcp = snippets(TCP_EVERYTHING | {"timeouts": {"tunnel_idle_ms": 300_000}})
    assert "upgrade" not in tcp["nginx"].lower() and "tunnel" not in tcp["haproxy"]


def test_udp_reads_as_an_nginx_stream_server_and_haproxy_says_it_cannot():
    flows = snippets({"mode": "udp", "algorithm": "consistent-hash", "backends": BACKENDS})
    nginx = flows["nginx"]
    assert nginx.startswith("# inside stream { } (Layer 4, UDP)")
    assert "hash $remote_addr:$remote_port consistent;" in nginx  # address and port, as the lab
    assert "listen 127.0.0.1:8080 udp;" in nginx and "proxy_timeout 10s;" in nginx
    assert "proxy_responses" not in nginx.replace("# no proxy_responses", "")
    assert "keepalive" not in nginx and "proxy_next_upstream" not in nginx
    per = snippets({"mode": "udp", "backends": BACKENDS, "udp": {"per_datagram": True}})
    assert "    proxy_responses 1;" in per["nginx"]
    assert "backend " not in flows["haproxy"] and "does not load-balance UDP" in flows["haproxy"]
    state = {"mode": "udp", "algorithm": "round-robin", "backends": BACKENDS,
             "settings": {"udp": {"idle_timeout_ms": 500, "per_datagram": False}}}  # fmt: skip
    assert "proxy_timeout 500ms;" in snippets(from_state(state))["nginx"]


def test_proxy_headers_read_as_nginx_proxy_protocol_and_haproxy_accept_proxy():
    proxy = {"proxy_protocol": {"accept": True, "send": "v2", "trusted": "10.0.0.0/8"}}
    web = snippets({"mode": "http", "algorithm": "round-robin", "backends": BACKENDS} | proxy)
    assert "    listen 127.0.0.1:8080 proxy_protocol;" in web["nginx"]
    assert "    set_real_ip_from 10.0.0.0/8;" in web["nginx"]
    assert "    real_ip_header proxy_protocol;" in web["nginx"]
    assert "    bind 127.0.0.1:8080 accept-proxy" in web["haproxy"]
    assert "tcp-request connection reject unless { src 10.0.0.0/8 }" in web["haproxy"]
    assert "send-proxy" not in web["haproxy"]  # at Layer 7 X-Forwarded-For tells the backend
    tcp = snippets({"mode": "tcp", "algorithm": "round-robin", "backends": BACKENDS} | proxy)
    assert "    proxy_protocol on;" in tcp["nginx"] and "real_ip_header" not in tcp["nginx"]
    assert tcp["haproxy"].count(" send-proxy-v2") == len(BACKENDS)
    # With rules, their own server { } and frontend read the headers.
    ruled = snippets(EVERYTHING | proxy)
    assert ruled["nginx"].count("server {") == 1 and "proxy_protocol;" in ruled["nginx"]
    assert ruled["haproxy"].count("frontend ") == 1 and "accept-proxy" in ruled["haproxy"]
    off = snippets({"mode": "http", "algorithm": "round-robin", "backends": BACKENDS})
    assert "proxy_protocol" not in off["nginx"] and "accept-proxy" not in off["haproxy"]


def test_version_marked_lines_are_commented_out_only_for_an_older_nginx():
    shown = snippets(EVERYTHING | {"algorithm": "least-response-time"})["nginx"]
    assert "# needs nginx 1.31.0 or later (Debian 12 has 1.22)" in shown
    debian = for_nginx_version(shown, (1, 22, 1))
    assert "    # not in nginx 1.22.1: least_time last_byte;  # nginx 1.31.0+\n" in debian
    assert "    # not in nginx 1.22.1: sticky cookie LAB;  # nginx 1.29.6+\n" in debian
    between = for_nginx_version(shown, (1, 29, 6))
    assert "\n    sticky cookie LAB;  # nginx 1.29.6+" in between
    assert "# not in nginx 1.29.6: least_time last_byte;" in between
    assert for_nginx_version(shown, (1, 31, 0)) == shown
    unmarked = [line for line in debian.splitlines() if "# nginx 1." not in line]
    assert unmarked == [line for line in shown.splitlines() if "# nginx 1." not in line]


def installed_nginx() -> tuple[int, int, int]:
    """The installed nginx's version, from `nginx -v` (it prints to stderr)."""
    result = subprocess.run([NGINX, "-v"], capture_output=True, text=True, timeout=30)
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", result.stderr + result.stdout)
    assert found, result.stderr
    return int(found[1]), int(found[2]), int(found[3])


def stream_module() -> str | None:
    return next((path for path in STREAM_MODULES if Path(path).exists()), None)


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
@pytest.mark.parametrize("name, config", CASES, ids=[name for name, _ in CASES])
def test_nginx_accepts_the_upstream_block(tmp_path, name, config):
    if config["mode"] == "udp" and stream_module() is None:
        pytest.skip("a UDP listener needs nginx's stream module (libnginx-mod-stream)")
    # Only what the installed nginx knows: newer directives (marked) become comments.
    snippet = for_nginx_version(snippets(config)["nginx"], installed_nginx())
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
    if config["mode"] == "udp":  # nothing to accept: it says why instead (see below)
        assert snippet.startswith("# Open-source HAProxy does not load-balance UDP.")
        return
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(haproxy_config(snippet, config["mode"]))
    result = subprocess.run(
        [HAPROXY, "-c", "-f", str(conf)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{conf.read_text()}"


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_the_installed_nginx_refuses_exactly_the_lines_marked_newer(tmp_path):
    # The marks are the truth about versions: an nginx older than a mark refuses
    # that line, and one at least as new accepts it (as the test above then shows).
    version = installed_nginx()
    for config, needs in (
        ({"algorithm": "least-response-time"}, (1, 31, 0)),
        ({"algorithm": "round-robin", "sticky": {"mode": "cookie"}}, (1, 29, 6)),
    ):
        config = {"mode": "http", "backends": BACKENDS, **config}
        conf = tmp_path / "nginx.conf"
        conf.write_text(nginx_config(snippets(config)["nginx"], "http", str(tmp_path)))
        result = subprocess.run(
            [NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "e")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if version < needs:
            assert result.returncode != 0 and "unknown directive" in result.stderr
        else:
            assert result.returncode == 0, result.stderr
