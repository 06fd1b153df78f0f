"""`lb-lab bench`: lb-lab against nginx and HAProxy on the same backends, on this machine.

Only argparse lives here; the benchmark itself is imported when it runs.
"""

from __future__ import annotations

import argparse
import math

TARGETS = ("direct", "lb-http", "lb-tcp", "nginx", "haproxy-http", "haproxy-tcp")
ALIASES = {"lb": ("lb-http", "lb-tcp"), "haproxy": ("haproxy-http", "haproxy-tcp")}
TOOL_CHOICES = ("auto", "wrk", "hey", "builtin")


def _positive(kind: type) -> object:
    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
        return value

    convert.__name__ = kind.__name__
    return convert


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _backends(text: str) -> int:
    value = _positive(int)(text)  # type: ignore[operator]
    if value > 32:
        raise argparse.ArgumentTypeError(f"at most 32, not {value}")
    return value


def parse_targets(text: str) -> tuple[str, ...]:
    """`direct,lb` to ("direct", "lb-http", "lb-tcp"), kept in the standard order."""
    chosen = set()
    for word in filter(None, (w.strip() for w in text.split(","))):
        if word in ALIASES:
            chosen.update(ALIASES[word])
        elif word in TARGETS:
            chosen.add(word)
        else:
            names = ", ".join((*TARGETS, *ALIASES))
            raise argparse.ArgumentTypeError(f"unknown target {word!r} (choose from {names})")
    if not chosen:
        raise argparse.ArgumentTypeError("name at least one target")
    return tuple(t for t in TARGETS if t in chosen)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Benchmark lb-lab at Layer 7 and Layer 4 against direct traffic, nginx and HAProxy "
        "on the same backends. Runs alternate over rounds; medians are reported. nginx, "
        "HAProxy, wrk and hey are used when installed and skipped with a note when not."
    )
    parser.add_argument(
        "--duration",
        type=_positive(float),
        default=5.0,
        metavar="S",
        help="seconds per run (default 5)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive(int),
        default=3,
        metavar="N",
        help="rounds; each runs every target once, in a rotated order (default 3)",
    )
    parser.add_argument(
        "--connections",
        type=_positive(int),
        default=64,
        metavar="C",
        help="keep-alive connections of the throughput runs (default 64)",
    )
    parser.add_argument(
        "--backends",
        type=_backends,
        default=3,
        metavar="N",
        help="toy backends behind every proxy (default 3)",
    )
    parser.add_argument(
        "--rate",
        type=_rate,
        default=1000.0,
        metavar="R",
        help="requests/s of the fixed-rate latency runs; 0 skips them (default 1000)",
    )
    parser.add_argument(
        "--rate-connections",
        type=_positive(int),
        default=8,
        metavar="C",
        help="connections of the fixed-rate latency runs (default 8)",
    )
    parser.add_argument(
        "--tool",
        choices=TOOL_CHOICES,
        default="auto",
        help="throughput load tool; auto = wrk, else hey, else builtin (default auto)",
    )
    parser.add_argument(
        "--only",
        type=parse_targets,
        default=TARGETS,
        metavar="T[,T...]",
        help=f"targets to run: {', '.join(TARGETS)}; 'lb' and 'haproxy' name both modes",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON (progress goes to stderr)"
    )
    web = parser.add_argument_group(
        "web lab",
        "--web benchmarks the web lab instead: `lb-lab serve` with its page open "
        "in headless Chromium under load (needs Playwright and Chromium)",
    )
    web.add_argument("--web", action="store_true", help="run the web lab benchmark")
    web.add_argument(
        "--web-rate",
        type=_positive(float),
        default=2000.0,
        metavar="R",
        help="requests/s through the balancer while measuring (default 2000)",
    )
    web.add_argument(
        "--web-seconds",
        type=_positive(float),
        default=10.0,
        metavar="S",
        help="seconds of measuring (default 10)",
    )
    web.add_argument(
        "--chromium", default=None, metavar="PATH", help="the browser (default /usr/bin/chromium)"
    )
    web.add_argument(
        "--web-compare",
        type=_pair,
        default=None,
        metavar="LEFT,RIGHT",
        help="benchmark a comparison (lb-lab serve --compare): --web-rate is then each side's "
        "rate; reports frames/s and how far the two sides' counts ever differ",
    )
    recording = parser.add_argument_group(
        "recording",
        "--recording records a busy lab (at --web-rate) and reports the file's size against "
        "its bound, then how fast its export starts playing in headless Chromium",
    )
    recording.add_argument("--recording", action="store_true", help="run the recording benchmark")
    recording.add_argument(
        "--recording-seconds",
        type=_positive(float),
        default=60.0,
        metavar="S",
        help="seconds to record (default 60)",
    )
    udp = parser.add_argument_group(
        "UDP",
        "--udp benchmarks mode udp instead: request/response datagrams per second through "
        "lb-lab and through nginx's stream UDP proxy (1 worker) on the same backends, and "
        "memory per 10,000 live flows (uses --duration, --rounds, --backends, --json)",
    )
    udp.add_argument("--udp", action="store_true", help="run the UDP benchmark")
    udp.add_argument(
        "--udp-flows",
        type=_positive(int),
        default=64,
        metavar="N",
        help="concurrent flows, each one datagram in flight at a time (default 64)",
    )
    udp.add_argument(
        "--udp-memory-flows",
        type=_positive(int),
        default=10_000,
        metavar="N",
        help="live flows opened to measure memory, reported per 10,000 (default 10000)",
    )
    web.add_argument(
        "--viewers",
        type=_viewer_steps,
        default=None,
        metavar="N[,N...]",
        help="a classroom instead: N simulated viewers (python-socketio) and one presenter page "
        "on one lab; 25,50,100,200 adds them in steps, measuring at each",
    )
    web.add_argument(
        "--web-workers",
        type=_positive(int),
        default=1,
        metavar="W",
        help="with --viewers: W web processes behind the lab's own balancer, sharing a "
        "redis-server the benchmark starts (default 1: no Redis)",
    )
    parser.add_argument(
        "--proxy-protocol",
        action="store_true",
        help="what reading PROXY headers costs: lb-lab at Layer 7 with and without "
        "--accept-proxy, keep-alive (uses --duration, --rounds, --connections, --backends)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="HTTPS: lb-lab terminating TLS against nginx (keep-alive, full handshakes and "
        "resumed ones), and passing it through on the SNI against HAProxy (keep-alive and "
        "new connections) (uses --duration, --rounds, "
        "--connections, --backends, --json)",
    )
    parser.set_defaults(run=run)


def _pair(text: str) -> tuple[str, str]:
    from lab.service.options import algorithm_pair  # the lab's own reading of LEFT,RIGHT

    return algorithm_pair(text)


def _viewer_steps(text: str) -> tuple[int, ...]:
    """'200' or '25,50,100,200' -> increasing viewer counts."""
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N,N,... viewers, got {text!r}") from None
    if any(n < 1 or n > 2000 for n in steps) or list(steps) != sorted(set(steps)):
        raise argparse.ArgumentTypeError(f"viewer counts are 1-2000, increasing: got {text!r}")
    return steps


def run(options: argparse.Namespace) -> int:
    if options.tls:
        from lab.bench.tls import main as tls_main

        return tls_main(options)
    if options.proxy_protocol:
        from lab.bench.proxy import main as proxy_main

        return proxy_main(options)
    if options.viewers is not None:
        from lab.bench.room import main as room_main

        return room_main(options)
    if options.recording:
        from lab.bench.recording import main as recording_main

        return recording_main(options)
    if options.udp:
        from lab.bench.udp import main as udp_main

        return udp_main(options)
    if options.web:
        from lab.bench.web import main as web_main

        return web_main(options)
    from lab.bench.runner import main

    return main(options)
