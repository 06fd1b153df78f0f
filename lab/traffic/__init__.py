"""`lb-lab traffic`: real HTTP/1.1 traffic through the balancer, steered while it runs.

The generator itself is imported only when the command runs, so `lb-lab --help`
stays fast.
"""

from __future__ import annotations

import argparse

from lab.traffic.settings import (
    MAX_CLIENTS,
    MAX_RATE,
    SettingError,
    client_count,
    parse_address,
    parse_sni_mix,
    parse_target,
    rate,
    session_length,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the traffic generator's flags on its subcommand parser."""
    parser.description = (
        "Send open-loop HTTP/1.1 traffic (Poisson arrivals) from simulated clients, each with its "
        "own source address 127.0.0.(k+1), cookie jar and keep-alive connections, over HTTPS "
        "too (--tls, an SNI name per client, TLS session resumption). Steer it while "
        "it runs: GET /state, PUT /config, POST /send, POST /reset on the control address."
    )
    add = parser.add_argument
    add("--target", required=True, type=_target, metavar="URL", action="append",
        help="where to send it: http://HOST:PORT[/path], usually the balancer; give it twice "
        "to compare two balancers: every arrival then goes to both at once")  # fmt: skip
    add("--rate", type=_rate, default=5.0, metavar="R",
        help=f"requests per second on average, 0-{MAX_RATE:g} (default 5)")  # fmt: skip
    add("--clients", type=_clients, default=4, metavar="N",
        help=f"simulated clients, 1-{MAX_CLIENTS} (default 4)")  # fmt: skip
    add("--duration", type=_duration, default=0.0, metavar="S",
        help="stop after S seconds and print a summary (default 0: until stopped)")  # fmt: skip
    add("--control", type=_control, default="127.0.0.1:0", metavar="HOST:PORT",
        help="control API address; port 0 picks a free one (default 127.0.0.1:0)")  # fmt: skip
    add("--keep-alive", type=_on_off, default=True, metavar="on|off",
        help="reuse connections (on, the default) or one connection per request (off)")  # fmt: skip
    add("--protocol", choices=("http", "udp"), default="http",
        help="http requests (default), or udp datagrams to the target's host and port")  # fmt: skip
    add("--udp-session", type=_session, default=5, metavar="N",
        help="udp: datagrams from one source port before a fresh one; 1 = a fresh port "
        "every time, 0 = never (default 5)")  # fmt: skip
    add("--proxy-protocol", choices=("v1", "v2"), default=None,
        help="start each TCP connection with a PROXY header naming the client's own address "
        "(127.0.0.k+1), instead of binding it; the target must accept PROXY headers "
        "(lb-lab balancer --accept-proxy)")  # fmt: skip
    add("--split", action="store_true",
        help="with two targets, share the clients out between them (client k to target k mod 2, "
        "as two balancers in front of the same backends) instead of sending to both")  # fmt: skip
    add("--tls", action="store_true",
        help="speak HTTPS to the target (an https:// target does too), verified against "
        "--ca-file; PUT /config {\"tls\": true|false} switches while it runs")  # fmt: skip
    add("--ca-file", default=None, metavar="FILE",
        help="the CA certificate (PEM) HTTPS verifies the target against, e.g. the lab's "
        "ca.pem; needed for --tls")  # fmt: skip
    add("--sni-mix", type=_sni_mix, default={}, metavar="NAME=W,...",
        help="the SNI names the clients ask for and their shares, e.g. "
        "shop.lab.test=3,api.lab.test=1 (default: the target's host)")  # fmt: skip
    add("--resumption", type=_on_off, default=True, metavar="on|off",
        help="each client offers its last TLS session, skipping the full handshake (on, the "
        "default), or pays for a full handshake on every connection (off)")  # fmt: skip
    add("--paused", action="store_true", help="start paused: only POST /send sends anything")
    add("--seed", type=int, default=None, metavar="N", help="seed arrivals and paths (replayable)")
    parser.set_defaults(run=run, parser=parser)


def run(options: argparse.Namespace) -> int:
    from lab.traffic.generator import resolve
    from lab.traffic.generator import run as run_generator
    from lab.traffic.tls import read_ca

    options.ca_pem = None
    if options.ca_file is not None:
        try:
            options.ca_pem = read_ca(options.ca_file)
        except SettingError as exc:
            options.parser.error(f"--ca-file: {exc.message}")
    https = options.tls or any(target.https for target in options.target)
    if https and options.ca_pem is None:
        options.parser.error("HTTPS needs --ca-file FILE: the CA to verify the target against")
    if len(options.target) > 2:
        options.parser.error("--target: at most two targets (the two sides of a comparison)")
    targets, bind_source = [], True
    for target in options.target:
        try:
            address, can_bind = resolve(target)
        except SettingError as exc:
            options.parser.error(exc.message)
        targets.append((target, address))
        bind_source = bind_source and can_bind
    return run_generator(options, targets, bind_source)


def _checked(parse):
    """Turn a parser that raises SettingError into an argparse `type=` with one clear line."""

    def check(text: str):
        try:
            return parse(text)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(exc.message.removeprefix(f"{exc.field} ")) from None

    return check


@_checked
def _target(text: str):
    return parse_target(text)


@_checked
def _rate(text: str) -> float:
    return rate("rate", _number(text))


@_checked
def _clients(text: str) -> int:
    return client_count("clients", _whole(text))


@_checked
def _session(text: str) -> int:
    return session_length("udp-session", _whole(text))


@_checked
def _sni_mix(text: str) -> dict[str, int]:
    return parse_sni_mix("sni-mix", text)


@_checked
def _control(text: str) -> tuple[str, int]:
    return parse_address(text)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SettingError("", f"not a number: {text!r}") from None


def _whole(text: str) -> int:
    if not (text.isascii() and text.strip().isdigit()):
        raise SettingError("", f"not a whole number: {text!r}")
    return int(text)


def _duration(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text!r}")
    return seconds


def _on_off(text: str) -> bool:
    if text.lower() not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text.lower() == "on"
