"""The benchmark as a client of the balancer's admin API: an /events subscriber and /state.

The web lab always listens to `/events` while traffic flows, so the benchmark
does too: lb-lab is measured doing the work it does in class.

    python -m lab.bench.admin HOST:PORT    # count events until stdin closes
"""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading

import httptools

ATTACH_TIMEOUT_S = 5.0
READ_SIZE = 256 * 1024


class AdminError(RuntimeError):
    """The admin API did not answer as DESIGN.md says it does."""


def split_address(address: str) -> tuple[str, int]:
    """`127.0.0.1:8080` (or `[::1]:8080`) to a host and a port."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not HOST:PORT: {address!r}")
    return host.strip("[]"), int(port)


def get_json(host: str, port: int, path: str, timeout: float = 5.0) -> dict:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        body = answer.read()
    except OSError as exc:
        raise AdminError(f"GET {path} on {host}:{port}: {exc}") from None
    finally:
        conn.close()
    if answer.status != 200:
        raise AdminError(f"GET {path} on {host}:{port} answered {answer.status}")
    return json.loads(body)


def find_dropped(state: object) -> int | None:
    """The first number under a key that mentions `dropped`, anywhere in a /state answer."""
    if isinstance(state, dict):
        for key, value in state.items():
            if "dropped" in key and isinstance(value, int) and not isinstance(value, bool):
                return value
        for value in state.values():
            found = find_dropped(value)
            if found is not None:
                return found
    elif isinstance(state, list):
        for value in state:
            found = find_dropped(value)
            if found is not None:
                return found
    return None


class EventsSubscriber:
    """Streams `GET /events` in a thread and counts the newline-delimited events."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.lines = 0
        self.status = 0
        self.error = ""
        self._attached = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._read, name="events-subscriber", daemon=True)

    def __enter__(self) -> EventsSubscriber:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Connect, and return once the balancer has answered with the stream's headers."""
        self._sock = socket.create_connection((self.host, self.port), timeout=ATTACH_TIMEOUT_S)
        self._sock.sendall(
            f"GET /events HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode("ascii")
        )
        self._thread.start()
        if not self._attached.wait(ATTACH_TIMEOUT_S):
            self.stop()
            raise AdminError(f"/events on {self.host}:{self.port} sent no headers")
        if self.status != 200:
            self.stop()
            raise AdminError(f"/events on {self.host}:{self.port} answered {self.status}")

    def stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread
        if self._thread.is_alive():
            self._thread.join(ATTACH_TIMEOUT_S)
        if self._sock is not None:
            self._sock.close()

    # httptools callbacks, on the reading thread
    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._attached.set()

    def on_body(self, body: bytes) -> None:
        self.lines += body.count(b"\n")

    def _read(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        sock = self._sock
        assert sock is not None
        sock.settimeout(None)
        try:
            while chunk := sock.recv(READ_SIZE):
                self._parser.feed_data(chunk)
        except (OSError, httptools.HttpParserError) as exc:
            self.error = str(exc)
        finally:
            self._attached.set()


class SubscriberProcess:
    """An EventsSubscriber in a process of its own, like the web lab's.

    In the benchmark's process it would compete for the GIL with the built-in
    load generator and make lb-lab look slower than it is.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.lines = 0
        self.error = ""
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> SubscriberProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the process and return once it is attached to the stream."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "lab.bench.admin", f"{self.host}:{self.port}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self._process.stdout is not None
        said = self._process.stdout.readline().strip()  # the child gives up after its timeout
        if said != "attached":
            self.stop()
            raise AdminError(said or "the /events subscriber exited before attaching")

    def count(self) -> int:
        """How many events the child has read so far (it answers each line on its stdin)."""
        assert self._process is not None and self._process.stdin and self._process.stdout
        self._process.stdin.write("count\n")
        self._process.stdin.flush()
        self.lines = int(self._process.stdout.readline())
        return self.lines

    def stop(self) -> None:
        """Close the child's stdin, its signal to stop, and read how many events it saw."""
        if self._process is None:
            return
        try:
            out, _ = self._process.communicate(timeout=ATTACH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            out, _ = self._process.communicate()
        self._process = None
        last = out.strip().splitlines()[-1:] if out else []
        words = last[0].split(maxsplit=1) if last else []
        if words and words[0].isdigit():
            self.lines = int(words[0])
            self.error = words[1] if len(words) > 1 else ""


def main(args: list[str]) -> int:
    """Attach to /events, say `attached`, count until stdin closes, then print the count.

    Each line on stdin before that is answered with the count so far.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal Ctrl-C is the parent's to handle
    host, port = split_address(args[0])
    subscriber = EventsSubscriber(host, port)
    try:
        subscriber.start()
    except (OSError, AdminError) as exc:
        print(f"error: {exc}", flush=True)
        return 1
    print("attached", flush=True)
    for _ in sys.stdin:
        print(subscriber.lines, flush=True)
    subscriber.stop()
    print(subscriber.lines, subscriber.error, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
