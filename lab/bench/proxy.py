"""`lb-lab bench --proxy-protocol`: what reading PROXY headers costs the Layer 7 balancer.

Two balancers on the same toy backends, one plain and one with
`proxy_protocol.accept`. The built-in load generator drives both with keep-alive
connections, rounds alternating which goes first; towards the second, each
connection starts with a PROXY v2 header, as from a proxy in front. The header
is parsed once per connection, so over keep-alive the two should be alike: the
report gives each one's requests a second and their ratio (the median of the
per-round ratios, as the main benchmark does).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from lab.address import split_address
from lab.bench import loadgen
from lab.proxy_protocol import encode_v2
from lab.supervisor import Supervisor

PLAIN, PROXIED = "lb-http", "lb-http+proxy"
CLIENT = ("198.51.100.7", 40000)  # who the header says connected (documentation range)


def main(options: argparse.Namespace) -> int:
    say = (lambda text: print(text, file=sys.stderr)) if options.json else print
    with Supervisor() as supervisor:
        backends: list[str] = []
        for i in range(1, options.backends + 1):
            child = supervisor.start(f"b{i}", ["backend", "--name", f"b{i}", "--port", "0"])
            backends += ["--backend", f"b{i}={child.addresses['listen']}"]
        base = ["balancer", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", *backends]
        targets = {
            PLAIN: split_address(supervisor.start(PLAIN, base).addresses["listen"]),
            PROXIED: split_address(
                supervisor.start(PROXIED, [*base, "--accept-proxy"]).addresses["listen"]
            ),
        }
        rates: dict[str, list[float]] = {PLAIN: [], PROXIED: []}
        for round_ in range(options.rounds):
            order = [PLAIN, PROXIED] if round_ % 2 == 0 else [PROXIED, PLAIN]
            for name in order:
                host, port = targets[name]
                greeting = encode_v2(CLIENT, (host, port)) if name == PROXIED else b""
                sample = loadgen.closed_loop(
                    name, host, port, options.connections, options.duration, greeting=greeting
                )
                rate = sample.requests / sample.seconds
                rates[name].append(rate)
                say(f"round {round_ + 1}: {name}: {rate:,.0f} req/s, {sample.errors} errors")
    ratios = [p / q for p, q in zip(rates[PROXIED], rates[PLAIN], strict=True)]
    result = {
        "connections": options.connections,
        "rounds": options.rounds,
        "req_per_s": {name: round(statistics.median(r)) for name, r in rates.items()},
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
    }
    if options.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"PROXY protocol at Layer 7, keep-alive, {options.connections} connections: "
            f"{result['req_per_s'][PROXIED]:,} req/s with --accept-proxy vs "
            f"{result['req_per_s'][PLAIN]:,} without: {result['ratio']:.3f}x "
            f"(per round {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    return 0
