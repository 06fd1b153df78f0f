"""`lb-lab backend`: one toy HTTP backend that says who served each request.

The server itself is imported only when the command runs, so `lb-lab --help`
stays fast.
"""

from __future__ import annotations

import argparse

from lab.backend.knobs import argparse_type, count, fraction, milliseconds, name_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the backend's flags on its subcommand parser."""
    parser.description = (
        "One toy backend: an HTTP/1.1 server (and a UDP service on the same port) whose "
        "answers say which backend served them. "
        "Knobs can also be changed at run time: PUT /_lab/knobs, GET /_lab/state."
    )
    parser.add_argument("--name", required=True, type=name_type, help="backend name, e.g. b1")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--udp-port",
        type=_port,
        default=None,
        help="UDP port to answer datagrams on (default: the same number as --port; 0: any free)",
    )
    add = parser.add_argument
    add("--latency-ms", type=argparse_type(milliseconds, "latency-ms"), default=0.0, metavar="MS",
        help="added to every request (default 0)")  # fmt: skip
    add("--jitter-ms", type=argparse_type(milliseconds, "jitter-ms"), default=0.0, metavar="MS",
        help="latency varies uniformly by +/- this (default 0)")  # fmt: skip
    add("--error-rate", type=argparse_type(fraction, "error-rate"), default=0.0, metavar="P",
        help="fraction of requests answered 500, 0 to 1 (default 0)")  # fmt: skip
    add("--max-concurrency", type=argparse_type(count, "max-concurrency"), default=0, metavar="N",
        help="requests in flight at once; more wait in line (default 0: no limit)")  # fmt: skip
    add("--proxy-protocol", action="store_true",
        help="every connection must start with a PROXY header (v1 or v2) naming the client, as "
        "a balancer with proxy_protocol.send sends it (default: one is read if it comes first, "
        "from loopback only)")  # fmt: skip
    add("--seed", type=int, default=None, help="seed for jitter and errors, to replay a run")
    add("--tls-port", type=_port, default=None, metavar="N",
        help="also serve the same answers over TLS on this port (0: any free one), with "
        "--tls-cert and --tls-key; the plain port stays, for health checks and /_lab/")  # fmt: skip
    add("--tls-cert", default=None, metavar="FILE",
        help="the TLS listener's certificate chain, PEM (e.g. the lab's cert.pem)")  # fmt: skip
    add("--tls-key", default=None, metavar="FILE",
        help="the TLS listener's private key, PEM (e.g. the lab's key.pem)")  # fmt: skip
    parser.set_defaults(run=run, parser=parser)


def run(options: argparse.Namespace) -> int:
    from lab.backend.server import run as run_server
    from lab.backend.tls import TlsSetupError

    given = [flag for flag in ("tls_cert", "tls_key") if getattr(options, flag) is not None]
    if options.tls_port is not None and len(given) < 2:
        options.parser.error("--tls-port needs both --tls-cert FILE and --tls-key FILE")
    if options.tls_port is None and given:
        options.parser.error(f"--{given[0].replace('_', '-')} needs --tls-port N (0: any free)")
    try:
        return run_server(options)
    except TlsSetupError as exc:
        options.parser.error(f"--tls-cert/--tls-key: {exc}")  # exits 2
        raise


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {text!r}")
    return int(text)
