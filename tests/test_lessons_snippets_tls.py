"""HTTPS in the generated nginx and HAProxy configs, checked by `nginx -t` and `haproxy -c`
against certificate files the lab made (lab.lessons.snippet_tls)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_lessons_snippets import (
    BACKENDS,
    EVERYTHING,
    TCP_EVERYTHING,
    installed_nginx,
    stream_module,
)

from lab.certificates import make_certificates
from lab.lessons.snippet_check import haproxy_config, nginx_config
from lab.lessons.snippet_nginx import for_nginx_version
from lab.lessons.snippets import from_state, snippets

NGINX = shutil.which("nginx")
HAPROXY = shutil.which("haproxy")
FILES = Path("/run/lab")  # in configs checked only by reading them; real files below
PROXY = {"proxy_protocol": {"accept": True, "send": "v2", "trusted": "127.0.0.0/8"}}
SNI_POOLS = {
    "pools": [{"name": "shop", "backends": ["b1"]}, {"name": "api", "backends": ["b2"]}],
    "rules": [
        {"name": "shop", "sni": "shop.lab.test", "pool": "shop"},
        {"name": "api", "sni": "*.api.lab.test", "pool": "api"},
    ],
}


def terminate(folder: Path, **more) -> dict:
    return {
        "mode": "terminate",
        "certificate": str(folder / "cert.pem"),
        "key": str(folder / "key.pem"),
        "upstream_ca": str(folder / "ca.pem"),
        **more,
    }


def cases(folder: Path) -> list[tuple[str, dict]]:
    plain = {"mode": "http", "algorithm": "ip-hash", "backends": BACKENDS}
    tcp = {"mode": "tcp", "algorithm": "round-robin", "backends": BACKENDS}
    return [
        ("terminate", plain | {"tls": terminate(folder)}),
        ("terminate-1.3", plain | {"tls": terminate(folder, min_version="1.3")}),
        ("terminate-upstream", plain | {"tls": terminate(folder, upstream=True)}),
        ("terminate-rules", EVERYTHING | {"tls": terminate(folder)}),
        ("terminate-rules-upstream", EVERYTHING | {"tls": terminate(folder, upstream=True)}),
        ("terminate-proxy", plain | PROXY | {"tls": terminate(folder)}),
        ("passthrough", tcp | {"tls": {"mode": "passthrough"}}),
        ("passthrough-sni", tcp | SNI_POOLS | {"tls": {"mode": "passthrough"}}),
        (
            "passthrough-no-sni-pool",
            tcp | SNI_POOLS | {"tls": {"mode": "passthrough", "no_sni_pool": "api"}},
        ),  # fmt: skip
        ("passthrough-everything", TCP_EVERYTHING | {"tls": {"mode": "passthrough"}}),
        ("passthrough-proxy", tcp | PROXY | {"tls": {"mode": "passthrough"}}),
    ]


CASES = cases(FILES)


def test_terminate_reads_as_an_ssl_listener_and_haproxy_bind_ssl_crt():
    config = dict(CASES)["terminate"]
    nginx, haproxy = snippets(config).values()
    assert "    listen 127.0.0.1:8080 ssl;" in nginx
    assert f"    ssl_certificate {FILES}/cert.pem;" in nginx
    assert f"    ssl_certificate_key {FILES}/key.pem;" in nginx
    assert "    ssl_protocols TLSv1.2 TLSv1.3;" in nginx
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in nginx
    assert "proxy_pass http://lab;" in nginx  # plain HTTP to the backends
    assert f"    bind 127.0.0.1:8080 ssl crt {FILES}/combined.pem ssl-min-ver TLSv1.2" in haproxy
    assert "one PEM file" in haproxy  # HAProxy's crt holds certificate and key together
    assert "http-request set-header X-Forwarded-Proto https" in haproxy
    assert " ssl verify" not in haproxy
    newest = snippets(dict(CASES)["terminate-1.3"])
    assert (
        "ssl_protocols TLSv1.3;" in newest["nginx"] and "ssl-min-ver TLSv1.3" in newest["haproxy"]
    )


def test_reencryption_verifies_the_backends_against_the_lab_ca():
    nginx, haproxy = snippets(dict(CASES)["terminate-upstream"]).values()
    assert "proxy_pass https://lab;" in nginx and "proxy_pass http://" not in nginx
    assert "proxy_ssl_verify on;" in nginx
    assert f"proxy_ssl_trusted_certificate {FILES}/ca.pem;" in nginx
    servers = [line for line in haproxy.splitlines() if line.startswith("    server ")]
    assert servers and all(
        line.endswith(f" ssl verify required ca-file {FILES}/ca.pem") for line in servers
    )


def test_rules_and_proxy_headers_keep_their_own_listener_now_with_ssl():
    ruled = snippets(dict(CASES)["terminate-rules"])
    assert ruled["nginx"].count("server {") == 1
    assert "    listen 127.0.0.1:8080 ssl;" in ruled["nginx"]
    assert ruled["haproxy"].count("frontend ") == 1
    assert f"    bind 127.0.0.1:8080 ssl crt {FILES}/combined.pem" in ruled["haproxy"]
    proxied = snippets(dict(CASES)["terminate-proxy"])
    assert "    listen 127.0.0.1:8080 ssl proxy_protocol;" in proxied["nginx"]
    assert "    bind 127.0.0.1:8080 accept-proxy ssl crt" in proxied["haproxy"]


def test_passthrough_reads_the_sni_and_never_holds_a_key():
    nginx, haproxy = snippets(dict(CASES)["passthrough-sni"]).values()
    assert "    ssl_preread on;" in nginx
    assert "map $ssl_preread_server_name $lab_sni_pool {" in nginx
    assert "    shop.lab.test lab_shop;  # rule shop" in nginx
    assert "    *.api.lab.test lab_api;  # rule api" in nginx
    assert "    mode tcp" in haproxy
    assert "    tcp-request inspect-delay 5s" in haproxy.replace("  # wait for the ClientHello", "")
    assert "    tcp-request content accept if { req_ssl_hello_type 1 }" in haproxy
    assert "use_backend lab_shop if { req.ssl_sni -i shop.lab.test }" in haproxy
    assert "use_backend lab_api if { req.ssl_sni -m end -i .api.lab.test }" in haproxy
    assert "tcp-request content reject if !{ req.ssl_sni -m found }" in haproxy
    for text in (nginx, haproxy):
        assert "ssl_certificate" not in text and " crt " not in text and "key" not in text
    no_sni = snippets(dict(CASES)["passthrough-no-sni-pool"])
    assert '    "" lab_api;' in no_sni["nginx"]
    assert "use_backend lab_api if !{ req.ssl_sni -m found }" in no_sni["haproxy"]
    assert "reject" not in no_sni["haproxy"]


def test_tls_off_or_at_the_wrong_layer_adds_nothing():
    for config in (
        {"mode": "http", "backends": BACKENDS},
        {"mode": "http", "backends": BACKENDS, "tls": {"mode": "off"}},
        {"mode": "tcp", "backends": BACKENDS, "tls": {"mode": "terminate"}},  # a config error
    ):
        nginx, haproxy = snippets(config).values()
        assert "ssl" not in nginx and "ssl" not in haproxy


def test_snippets_follow_the_balancers_tls_table_in_its_state():
    state = {
        "mode": "tcp", "algorithm": "round-robin", "listen": "127.0.0.1:8080",
        "backends": [{"name": "b1", "address": "127.0.0.1:9443"}],
        "settings": {"tls": {"mode": "passthrough", "no_sni_pool": ""}},
    }  # fmt: skip
    assert "ssl_preread on;" in snippets(from_state(state))["nginx"]


# -- the real tools, against certificate files the lab made


@pytest.fixture(scope="module")
def real_cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    make_certificates(folder)
    return dict(cases(folder))


NAMES = [name for name, _ in CASES]


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
@pytest.mark.parametrize("name", NAMES)
def test_nginx_accepts_the_https_config(tmp_path, real_cases, name):
    config = real_cases[name]
    if config["mode"] == "tcp" and stream_module() is None:
        pytest.skip("ssl_preread needs nginx's stream module (libnginx-mod-stream)")
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
@pytest.mark.parametrize("name", NAMES)
def test_haproxy_accepts_the_https_config(tmp_path, real_cases, name):
    config = real_cases[name]
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(haproxy_config(snippets(config)["haproxy"], config["mode"]))
    result = subprocess.run(
        [HAPROXY, "-c", "-f", str(conf)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{conf.read_text()}"
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr
