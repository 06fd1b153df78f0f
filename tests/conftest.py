"""Fixtures that start real lab processes on free loopback ports and stop every one of them."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.supervisor import Supervisor

# The browser tests drive Debian's Chromium through Playwright (a test dependency).
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per test module, launched as the web benchmark launches it."""
    from lab.bench import browser  # imports Playwright: only tests that use a browser pay

    with browser.chromium(str(CHROMIUM)) as launched:
        yield launched


@contextlib.contextmanager
def watched_page(chromium, name: str) -> Iterator:
    """A page in a fresh browser context that keeps a screenshot, `name`.png, at the end
    and fails the test on any console error or uncaught exception in the page."""
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    context.close()
    assert problems == []


def wait_for(
    condition: Callable[[], object], timeout: float = 5.0, interval: float = 0.02, what: str = ""
):
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class Http:
    """A tiny keep-alive HTTP client for one address, returning (status, headers, body)."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.conn = http.client.HTTPConnection(*split(address), timeout=timeout)

    def request(self, method: str, path: str, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()

    def get(self, path: str = "/", headers=None):
        return self.request("GET", path, headers=headers)

    def json(self, method: str, path: str, payload=None):
        body = None if payload is None else json.dumps(payload)
        status, _, data = self.request(method, path, body=body)
        return status, json.loads(data)

    def close(self) -> None:
        self.conn.close()


def raw_exchange(address: str, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, half-close, and read until the server closes."""
    with socket.create_connection(split(address), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


class EventReader:
    """Reads a balancer's /events stream on a thread, so a test can wait for an event."""

    def __init__(self, admin_address: str) -> None:
        self.sock = socket.create_connection(split(admin_address), timeout=10)
        self.sock.sendall(b"GET /events HTTP/1.1\r\nHost: admin\r\n\r\n")
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        buffer = b""
        try:
            while chunk := self.sock.recv(65536):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                parsed = [json.loads(line) for line in lines if line.startswith(b"{")]
                with self.lock:
                    self.events.extend(parsed)
        except OSError:
            pass

    def of(self, kind: str, **fields) -> list[dict]:
        """Events of this type whose fields equal the given ones, oldest first."""
        with self.lock:
            events = list(self.events)
        return [
            e for e in events if e["type"] == kind and all(e.get(k) == v for k, v in fields.items())
        ]

    def wait(self, kind: str, timeout: float = 5.0, **fields) -> dict:
        return wait_for(
            lambda: (self.of(kind, **fields) or [None])[0], timeout, what=f"{kind} {fields}"
        )

    def close(self) -> None:
        self.sock.close()


class RawSocketIO:
    """A Socket.IO client spoken by hand (Engine.IO long-polling): any packet, however odd."""

    def __init__(self, page: str) -> None:
        self.page, self.path = page, "/socket.io/?EIO=4&transport=polling"
        self.events: list[list] = []  # ["state", {...}], ["batch", {...}], ... as they came
        self.unread: list[str] = []  # packets of the last poll not looked at yet
        opened = self._http("GET", self.path)
        assert opened.startswith("0{")
        self.path += f"&sid={json.loads(opened[1:])['sid']}"
        self.send("40")
        self.next(lambda packet: packet.startswith("40"))

    def _http(self, method: str, path: str, body: str | None = None, timeout: float = 30) -> str:
        conn = http.client.HTTPConnection(*split(self.page), timeout=timeout)
        try:
            conn.request(method, path, body=None if body is None else body.encode())
            response = conn.getresponse()
            data = response.read().decode()
            assert response.status == 200, data
            return data
        finally:
            conn.close()

    def send(self, packet: str) -> None:
        assert self._http("POST", self.path, packet) == "OK"

    def next(self, wanted, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.unread:  # one poll may bring many packets: none is skipped
                self.unread = self._http("GET", self.path).split("\x1e")
            packet = self.unread.pop(0)
            if packet == "2":  # Engine.IO ping
                self.send("3")
            elif packet.startswith("42["):  # an event from the server: kept
                self.events.append(json.loads(packet[2:]))
            if wanted(packet):
                return packet
        raise AssertionError("no such packet in time")

    def received(self, name: str) -> list:
        """The data of every `name` event the server sent so far, oldest first."""
        return [args[1] for args in self.events if args[0] == name]

    def wait_for_event(self, name: str, check, timeout: float = 10.0):
        """The first `name` event (received so far or next) whose data passes `check`."""
        found = [data for data in self.received(name) if check(data)]
        while not found:
            packet = self.next(lambda p: p.startswith(f'42["{name}"'), timeout)
            data = json.loads(packet[2:])[1]
            found = [data] if check(data) else []
        return found[0]

    def ask(self, packet_id: int, payload: str, timeout: float = 10.0):
        """Send `42<id><payload>` and return the arguments of its acknowledgement."""
        self.send(f"42{packet_id}{payload}")
        answer = self.next(lambda packet: packet.startswith(f"43{packet_id}["), timeout)
        return json.loads(answer[len(f"43{packet_id}") :])

    def close(self) -> None:
        self.send("41")


class Lab:
    """Real backend processes and a real balancer between them."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.backends: dict[str, str] = {}  # name -> address
        self.listen = ""
        self.admin_address = ""
        self._readers: list[EventReader] = []

    def start_backend(self, name: str, *flags: str) -> str:
        child = self.supervisor.start(name, ["backend", "--name", name, "--port", "0", *flags])
        self.backends[name] = child.addresses["listen"]
        return self.backends[name]

    def start_balancer(self, *flags: str, backends: list[str] | None = None) -> None:
        args = ["balancer", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", *flags]
        for name in backends if backends is not None else self.backends:
            args += ["--backend", f"{name}={self.backends[name]}"]
        child = self.supervisor.start("balancer", args)
        self.listen, self.admin_address = child.addresses["listen"], child.addresses["admin"]

    def admin(self, method: str, path: str, payload=None):
        client = Http(self.admin_address)
        try:
            return client.json(method, path, payload)
        finally:
            client.close()

    def state(self) -> dict:
        return self.admin("GET", "/state")[1]

    def backend_state(self, name: str) -> dict:
        return next(b for b in self.state()["backends"] if b["name"] == name)

    def kill(self, name: str) -> None:
        self.supervisor.kill(name)

    def configure(self, **settings) -> dict:
        """PUT /config on the balancer; the test fails if the balancer refuses it."""
        status, answer = self.admin("PUT", "/config", settings)
        assert status == 200, answer
        return answer

    def knobs(self, name: str, **knobs) -> None:
        """Turn a toy backend's knobs (latency_ms, error_rate, healthy, ...)."""
        client = Http(self.backends[name])
        try:
            status, answer = client.json("PUT", "/_lab/knobs", knobs)
        finally:
            client.close()
        assert status == 200, answer

    def events(self) -> EventReader:
        reader = EventReader(self.admin_address)
        wait_for(lambda: self.state()["events"]["subscribers"] >= 1, what="the events reader")
        self._readers.append(reader)
        return reader


@pytest.fixture
def lab():
    """Three toy backends, b1..b3; the test starts the balancer with the flags it needs."""
    with Supervisor() as supervisor:
        lab = Lab(supervisor)
        for name in ("b1", "b2", "b3"):
            lab.start_backend(name)
        yield lab
        for reader in lab._readers:
            reader.close()


class ManualClock:
    """Time that moves only when a test says so, for policy tested without processes.

    `clock` is what the balancer's policy objects take (lab.balancer.clock.Clock);
    the wall clock starts at a fixed, realistic epoch and moves with the other one.
    """

    EPOCH = 1_796_000_000.0
    START = 1000.0  # like time.monotonic(), never 0: the policy uses 0 for "not set"

    def __init__(self) -> None:
        from lab.balancer.clock import Clock

        self.now = self.START
        self.clock = Clock(
            monotonic=lambda: self.now, wall=lambda: self.EPOCH + self.now - self.START
        )

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()


class RawBackend:
    """A backend on a thread that writes exactly the bytes `answer(request)` returns, in one
    write (None: close the connection), and records every request's bytes as they came."""

    def __init__(self, answer: Callable[[bytes], bytes | None]) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                sock, _ = self.server.accept()
                self.connections += 1
                threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        buffer = b""
        with sock, contextlib.suppress(OSError):
            while True:
                while b"\r\n\r\n" not in buffer:
                    if not (chunk := sock.recv(65536)):
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next(
                    (int(line[15:]) for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")),
                    0,
                )  # fmt: skip
                while len(buffer) < length and (chunk := sock.recv(65536)):
                    buffer += chunk
                self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                reply = self.answer(self.requests[-1])
                if reply is None:
                    return
                sock.sendall(reply)

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="module")
def lab_url():
    """One whole `lb-lab serve` with quiet traffic, on free ports, for the module; its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", "serve", "--port", "0", "--paused"]
        + ["--balancer-port", "0", "--backend-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ""
    for line in process.stdout:
        output += line
        if "Press Ctrl-C" in line:
            break
    match = re.search(r"Load Balancing Lab: (http://\S+)", output)
    assert match, f"the lab did not start:\n{output}"
    yield match.group(1)
    process.terminate()
    assert process.wait(10) == 0


@pytest.fixture
def start_traffic():
    """`start(supervisor, target, *flags)` runs `lb-lab traffic`; returns its control API client."""
    controls: list[Http] = []

    def start(supervisor: Supervisor, target: str, *flags: str) -> Http:
        child = supervisor.start("traffic", ["traffic", "--target", target, *flags])
        controls.append(Http(child.addresses["control"]))
        return controls[-1]

    yield start
    for control in controls:
        control.close()
