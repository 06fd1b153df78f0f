"""`lb-lab record`: record a running lab's stream for some seconds into a .lbrec file."""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lab.recording.format import Recorder, RecordingError, made

MAX_SECONDS = 600
STREAM_REQUEST = "GET /stream HTTP/1.1\r\nHost: {}\r\nAccept: application/x-ndjson\r\n\r\n"
CONNECT_TIMEOUT_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Record a running lab (its first state, then every batch with its time) into a "
        "compressed file that `lb-lab export` turns into a page that plays anywhere."
    )
    parser.add_argument("--seconds", type=seconds, required=True, help=f"how long, 1-{MAX_SECONDS}")
    parser.add_argument("--out", type=Path, required=True, help="the file to write, e.g. run.lbrec")
    parser.add_argument(
        "--lab", required=True, metavar="URL",
        help='the lab service, as `lb-lab serve` prints it ("service: http://127.0.0.1:PORT/")',
    )  # fmt: skip
    parser.set_defaults(run=run, parser=parser)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"--seconds must be 1-{MAX_SECONDS}, got {text!r}")
    return value


def run(options: argparse.Namespace) -> int:
    from lab.web.link import ServiceLink, service_address

    try:
        address = service_address(options.lab)
    except ValueError as exc:
        options.parser.error(f"--lab: {exc}")
    try:
        settings = ServiceLink(address).processes().get("settings")
    except (OSError, ValueError) as exc:
        print(f"error: no lab service at {options.lab} ({exc})", file=sys.stderr)
        return 1
    command = shlex.join(["lb-lab", *sys.argv[1:]]) if sys.argv[1:] else "lb-lab record"
    recorder = Recorder(made("lb-lab record", command, settings, options.seconds))
    try:
        follow(address, recorder.add, options.seconds, time.monotonic)
        data = recorder.finish()
    except RecordingError as exc:
        print(f"error: not recorded: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: the lab's stream broke: {exc}", file=sys.stderr)
        return 1
    options.out.write_bytes(data)
    print(
        f"{options.out}: {recorder.last_t:.1f} s, {len(recorder.lines)} messages, "
        f"{len(data) / 1e6:.2f} MB; play it with: lb-lab export {options.out} --out DIR"
    )
    return 0


def follow(
    address: str, add: Callable[[str, object, float], None], seconds: float, clock: Callable
) -> None:
    """Hand each message of the service's stream to `add` for `seconds` after its first."""
    from lab.address import split_address
    from lab.web.relay import LineReader

    with socket.create_connection(split_address(address), timeout=CONNECT_TIMEOUT_S) as sock:
        sock.sendall(STREAM_REQUEST.format(address).encode())
        reader = LineReader()
        until: float | None = None
        while until is None or clock() < until:
            sock.settimeout(CONNECT_TIMEOUT_S if until is None else max(until - clock(), 0.01))
            try:
                data = sock.recv(256 * 1024)
            except TimeoutError:
                if until is None:
                    raise
                continue  # a quiet lab: the time is up, or nearly
            if not data:
                raise ConnectionError("the lab service closed its stream")
            for line in reader.feed(data):
                message = json.loads(line)
                now = clock()
                if until is None:
                    until = now + seconds
                elif now >= until:
                    return
                add(message["name"], message["data"], now)
