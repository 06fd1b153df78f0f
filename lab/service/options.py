"""The lab's own flags, shared by `lb-lab serve` (which passes them on) and `lb-lab service`."""

from __future__ import annotations

import argparse

from lab.balancer.algorithms import ALGORITHM_NAMES
from lab.traffic.settings import MAX_CLIENTS, MAX_RATE
from lab.web.client_addresses import CHOICES
from lab.web.records import LabSettings

# flag -> the LabSettings field it sets, in the order `lb-lab serve` passes them on
PASSED_ON = {
    "--backends": "backends",
    "--mode": "mode",
    "--algorithm": "algorithm",
    "--balancer-port": "balancer_port",
    "--backend-port": "first_backend_port",
    "--rate": "rate",
    "--clients": "clients",
    "--client-addresses": "client_addresses",
}


def add_lab_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare what the lab starts with: backends, mode, algorithm, ports, traffic."""
    add = parser.add_argument
    add("--backends", type=_backend_count, default=3, help="how many toy backends (1-12)")
    add("--mode", choices=("http", "tcp", "udp"), default="http",
        help="http = L7 (default), tcp = L4 connections, udp = L4 flows")  # fmt: skip
    add("--algorithm", default="round-robin", metavar="NAME", help="to start with (round-robin)")
    busy = "or any free one if it is busy"
    add("--balancer-port", type=port, default=8080,
        help=f"the balancer's port (default 8080, {busy}; 0 = any)")  # fmt: skip
    add("--backend-port", type=port, default=9001,
        help="the first backend's port; b2 takes the next (default 9001; 0 = any)")  # fmt: skip
    add("--rate", type=_rate, default=2.0, help=f"requests per second, 0-{MAX_RATE:g} (default 2)")
    add("--clients", type=_clients, default=4, help=f"simulated clients, 1-{MAX_CLIENTS} (4)")
    add("--client-addresses", choices=CHOICES, default="auto",
        help="how each simulated client's own address (127.0.0.k+1) reaches the balancer: "
        "bind it, or name it in a PROXY header; auto (the default) binds where it can "
        "(Linux) and uses PROXY where only 127.0.0.1 exists (macOS)")  # fmt: skip
    add("--paused", action="store_true", help="start with traffic paused")
    add("--compare", type=algorithm_pair, default=None, metavar="LEFT,RIGHT",
        help="open a comparison: two balancers (these algorithms, e.g. round-robin,"
        "least-connections), each with its own backends, on the same traffic")  # fmt: skip


def check_algorithm(options: argparse.Namespace) -> None:
    """Refuse an unknown algorithm with one clear line (exit 2), before anything starts."""
    named = [("", options.algorithm)] + [("--compare: ", a) for a in options.compare or ()]
    for flag, algorithm in named:
        if algorithm not in ALGORITHM_NAMES:
            options.parser.error(
                f"{flag}unknown algorithm {algorithm!r}; "
                f"choose one of: {', '.join(ALGORITHM_NAMES)}"
            )


def settings_from(options: argparse.Namespace) -> LabSettings:
    fields = {field: getattr(options, field.replace("first_backend", "backend"))
              for field in PASSED_ON.values()}  # fmt: skip
    return LabSettings(**fields, paused=options.paused, seed=getattr(options, "seed", None))


def passed_on(options: argparse.Namespace) -> list[str]:
    """The flags that start a lab service exactly as these options say."""
    args: list[str] = []
    for flag, field in PASSED_ON.items():
        args += [flag, str(getattr(options, field.replace("first_backend", "backend")))]
    if options.compare:
        args += ["--compare", ",".join(options.compare)]
    return args + (["--paused"] if options.paused else [])


def compare_command(options: argparse.Namespace) -> dict | None:
    """The `compare` command --compare LEFT,RIGHT asks for (None: no comparison)."""
    if not options.compare:
        return None
    left, right = options.compare
    return {"action": "compare", "left": {"algorithm": left}, "right": {"algorithm": right}}


def algorithm_pair(text: str) -> tuple[str, str]:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(
            "expected two algorithms, LEFT,RIGHT (e.g. round-robin,least-connections), "
            f"got {text!r}"
        )
    return parts[0], parts[1]


def port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {text!r}")
    return int(text)


def _backend_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 12:
        raise argparse.ArgumentTypeError(f"--backends must be 1-12, got {text!r}")
    return int(text)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= MAX_RATE:
        raise argparse.ArgumentTypeError(f"--rate must be 0-{MAX_RATE:g}, got {text!r}")
    return value


def _clients(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_CLIENTS:
        raise argparse.ArgumentTypeError(f"--clients must be 1-{MAX_CLIENTS}, got {text!r}")
    return int(text)
