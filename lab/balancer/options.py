"""`lb-lab balancer`: command-line flags, merged over an optional TOML file."""

from __future__ import annotations

import argparse
import sys

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_ADMIN = "127.0.0.1:8081"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the load balancer daemon alone. Flags override the TOML file. "
        "Example: lb-lab balancer --backend b1=127.0.0.1:9001 --backend b2=127.0.0.1:9002,weight=2"
    )
    parser.add_argument(
        "--config", metavar="FILE.toml", help="settings file (same keys as PUT /config)"
    )
    parser.add_argument(
        "--mode",
        choices=("http", "tcp", "udp"),
        help="http = Layer 7 (default), tcp = Layer 4 connections, udp = Layer 4 flows",
    )
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help=f"traffic address (default {DEFAULT_LISTEN})"
    )
    parser.add_argument(
        "--admin", metavar="HOST:PORT", help=f"admin API address (default {DEFAULT_ADMIN})"
    )
    parser.add_argument(
        "--algorithm", metavar="NAME", help="round-robin (default), least-connections, ..."
    )
    parser.add_argument(
        "--hash-key",
        metavar="KEY",
        help="consistent-hash key: client-ip, path, header:NAME or cookie:NAME",
    )
    parser.add_argument(
        "--seed", type=int, help="seed the balancer's random choices (replayable runs)"
    )
    parser.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME=HOST:PORT[,weight=W][,max_conns=N][,backup]",
        help="a backend; repeat for more",
    )
    parser.add_argument(
        "--accept-proxy",
        action="store_true",
        help="every connection starts with a PROXY header (v1 or v2) naming the client; "
        "believed only from proxy_protocol.trusted (default loopback)",
    )
    parser.add_argument(
        "--send-proxy",
        choices=("v1", "v2"),
        help="at Layer 4, start each backend connection with a PROXY header naming the client",
    )
    parser.add_argument(
        "--udp-idle-timeout-ms",
        type=int,
        metavar="MS",
        help="mode udp: a flow ends after this long with no datagram either way (default 10000)",
    )
    parser.add_argument(
        "--udp-per-datagram",
        action="store_true",
        default=None,
        help="mode udp: balance every datagram on its own, over at its first reply",
    )
    parser.add_argument(
        "--udp-max-flows",
        type=int,
        metavar="N",
        help="mode udp: live flows kept; past it the flow idle longest is evicted (default 10000)",
    )
    parser.add_argument(
        "--tls",
        choices=("off", "terminate", "passthrough"),
        help="HTTPS: terminate = decrypt at Layer 7 (needs --tls-cert and --tls-key), "
        "passthrough = route encrypted connections by SNI at Layer 4",
    )
    parser.add_argument("--tls-cert", metavar="FILE.pem", help="terminate: certificate chain")
    parser.add_argument("--tls-key", metavar="FILE.pem", help="terminate: its private key")
    parser.add_argument(
        "--tls-min-version", choices=("1.2", "1.3"), help="terminate: oldest TLS (default 1.2)"
    )
    parser.add_argument(
        "--tls-upstream",
        action="store_true",
        default=None,
        help="terminate: encrypt again to backends that serve TLS, verified by --tls-upstream-ca",
    )
    parser.add_argument(
        "--tls-upstream-ca",
        metavar="FILE.pem",
        help="the CA that signed the backends' certificates",
    )
    parser.set_defaults(run=run, parser=parser)


def config_from_options(options: argparse.Namespace):
    """Build the whole config; raises ConfigError naming the bad field."""
    from lab.balancer.config import BalancerConfig, from_dict, load_toml, parse_backend_flag

    base = load_toml(options.config) if options.config else BalancerConfig()
    data: dict = {}
    for key in ("mode", "listen", "admin", "algorithm", "hash_key", "seed"):
        value = getattr(options, key)
        if value is not None:
            data[key] = value
    if not options.config:
        data.setdefault("listen", DEFAULT_LISTEN)
        data.setdefault("admin", DEFAULT_ADMIN)
    proxy = {}
    if getattr(options, "accept_proxy", False):
        proxy["accept"] = True
    if getattr(options, "send_proxy", None):
        proxy["send"] = options.send_proxy
    if proxy:
        data["proxy_protocol"] = proxy
    if options.backend:
        data["backends"] = [parse_backend_flag(text) for text in options.backend]
    udp = {
        key: value
        for key, value in (
            ("idle_timeout_ms", options.udp_idle_timeout_ms),
            ("per_datagram", options.udp_per_datagram),
            ("max_flows", options.udp_max_flows),
        )
        if value is not None
    }
    if udp:
        data["udp"] = udp  # a partial table: the file's other udp settings stay
    tls = {
        key: value
        for key, value in (
            ("mode", options.tls),
            ("certificate", options.tls_cert),
            ("key", options.tls_key),
            ("min_version", options.tls_min_version),
            ("upstream", options.tls_upstream),
            ("upstream_ca", options.tls_upstream_ca),
        )
        if value is not None
    }
    if tls:
        data["tls"] = tls  # a partial table, as udp's
    return from_dict(data, base=base)


def run(options: argparse.Namespace) -> int:
    from lab.balancer.config import ConfigError
    from lab.balancer.daemon import Daemon
    from lab.lifecycle import run_daemon

    try:
        config = config_from_options(options)
    except ConfigError as exc:
        options.parser.error(str(exc))
    if not config.backends:
        print(
            "lb-lab balancer: note: no backends yet; add them with PUT /config or POST /backends",
            file=sys.stderr,
        )
    return run_daemon(Daemon(config).run)
