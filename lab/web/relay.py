"""The relay: the balancer's event stream, batched about every 50 ms for every browser at once.

Counters are exact, animation is sampled. Each batch carries the balancer's
own counters, read from its `GET /state` right after the previous batch went
out, so a number on the page is never an estimate; the events in a batch are
the routing decisions to draw, and under heavy traffic only some of them are
sent, spread evenly over the batch (`omitted` says how many requests were left
out). A request whose `route` was sent always gets its `done` or `error` too,
so no dot waits forever.

The p50/p95 latency chart is computed here from every `done` event the relay
reads, one point per wall-clock second, and kept for the last minute so a
browser that joins late draws the same chart as the others. Each batch also
carries `latency_now`, the second still running (so far), so the chart shows an
answer as soon as the header's counters do, not up to a second later.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

BATCH_S = 0.05  # how often browsers get a batch
MAX_DATAGRAMS = 60  # datagram events drawn per batch (UDP flows of drawn routes)
MAX_NEW_ROUTES = 40  # new requests drawn per batch (800/s); more are counted, not drawn
MAX_ROUTED_CLIENTS = 256  # clients named in a batch's `routed` (the lab has at most 64)
HISTORY_S = 60  # seconds of latency history kept for the chart
RECONNECT_S = 0.5
REQUEST = b"GET /events HTTP/1.1\r\nHost: lab\r\nAccept: application/x-ndjson\r\n\r\n"

log = logging.getLogger(__name__)


class LineReader:
    """Bytes of an HTTP response in, whole NDJSON lines of its body out (no sockets here)."""

    def __init__(self) -> None:
        self.head_done = False
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        if not self.head_done:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return []
            status = head.split(b"\r\n", 1)[0]
            if b" 200 " not in status + b" ":
                raise ConnectionError(f"/events answered {status.decode('latin-1')!r}")
            self.head_done, self.buffer = True, rest
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line for line in lines if line.strip()]


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


class LatencyHistory:
    """p50 and p95 of response times, one point per second, for the last minute."""

    def __init__(self, seconds: int = HISTORY_S) -> None:
        self.points: deque[dict] = deque(maxlen=seconds)
        self.unsent: list[dict] = []
        self.second: int | None = None
        self.values: list[float] = []

    def observe(self, ms: float, now: float) -> None:
        self.advance(now)
        self.values.append(ms)

    def advance(self, now: float) -> None:
        """Close every whole second before `now` into a point (n = 0 when nothing finished)."""
        second = int(now)
        if self.second is None:
            self.second = second
        self.second = max(self.second, second - (self.points.maxlen or HISTORY_S))
        while self.second < second:
            ordered = sorted(self.values)
            point = {"t": self.second, "n": len(ordered), "p50": None, "p95": None}
            if ordered:
                point["p50"] = round(percentile(ordered, 0.50), 1)
                point["p95"] = round(percentile(ordered, 0.95), 1)
            self.points.append(point)
            self.unsent.append(point)
            self.values = []
            self.second += 1

    def take_unsent(self) -> list[dict]:
        unsent, self.unsent = self.unsent[-HISTORY_S:], []
        return unsent

    def now(self) -> dict | None:
        """The second still running, as a point of what answered in it so far (None: nothing)."""
        if not self.values:
            return None
        ordered = sorted(self.values)
        return {
            "t": self.second,
            "n": len(ordered),
            "p50": round(percentile(ordered, 0.50), 1),
            "p95": round(percentile(ordered, 0.95), 1),
        }


class BatchBuilder:
    """Collects events between two batches and decides which ones browsers will draw."""

    def __init__(self, max_new_routes: int = MAX_NEW_ROUTES) -> None:
        self.max_new_routes = max_new_routes
        self.events: list[dict] = []
        self.new_routes = 0
        self.omitted = 0
        # Draw one new request in `stride` (set from the last batch's count), chosen by a hash
        # of its id, so the drawn ones spread over the batch instead of being its first few
        # (a steady stream of dots, no older than the rest), and so that a plain "every n-th"
        # never falls in step with round robin and shows one backend only.
        self.stride = 1
        self.arrivals = 0  # new requests in this batch, drawn or not
        self.shown: set[str] = set()  # requests drawn and not finished yet
        self.datagrams = 0  # datagram events in this batch
        # Each client's backend by its latest route in this batch, drawn or not: the page's
        # "who moved" note (static/js/moves.js) must see every client, and sampling would
        # leave most of a burst out. Bounded: the lab's clients are at most 64.
        self.routed: dict[str, str] = {}
        self.latency = LatencyHistory()
        self.last_counters: dict | None = None

    def add(self, event: dict, now: float) -> None:
        kind, rid = event.get("type"), event.get("id")
        if kind == "datagram":
            self.add_datagram(event, rid, now)
            return
        ms = event.get("ms")
        # A WebSocket tunnel's done (101) says how long it stayed open, and a UDP flow's how
        # long it lived: not response times (at udp the chart shows datagrams' round trips).
        if (
            kind == "done"
            and isinstance(ms, int | float)
            and event.get("status") != 101
            and "end" not in event
        ):
            self.latency.observe(float(ms), now)
        if kind == "route":
            client, backend = event.get("client"), event.get("backend")
            room = client in self.routed or len(self.routed) < MAX_ROUTED_CLIENTS
            if isinstance(client, str) and isinstance(backend, str) and room:
                self.routed[client] = backend
        if kind not in ("route", "done", "error") or not isinstance(rid, str):
            self.events.append(event)  # config, dropped, health: rare and always shown
        elif rid in self.shown:
            self.events.append(event)
            if kind == "done" or (kind == "error" and event.get("status") is not None):
                self.shown.discard(rid)
        elif kind == "done":
            pass  # its route was not drawn (and was counted as omitted), so neither is its end
        else:
            # A request's first event (a refusal before its retry does not count it yet).
            counted = kind == "route" or event.get("status") is not None
            drawn = self.new_routes < self.max_new_routes and (
                self.stride == 1
                or zlib.crc32(rid.encode()) % self.stride == 0
                or "upgrade" in event  # a WebSocket tunnel: rare, long-lived, always drawn
            )
            if counted:
                self.arrivals += 1
            if drawn:
                self.new_routes += 1
                self.events.append(event)
                if kind == "route":
                    self.shown.add(rid)
            elif counted:
                self.omitted += 1  # a request not drawn (its retries are not counted again)
        if len(self.shown) > 50_000:  # their done events were dropped upstream: let go
            self.shown.clear()

    def add_datagram(self, event: dict, rid: object, now: float) -> None:
        """A datagram of a UDP flow: its round trip always counts; it is drawn only when its
        flow is, and at most MAX_DATAGRAMS of them per batch."""
        if isinstance(event.get("ms"), int | float):
            self.latency.observe(float(event["ms"]), now)
        if rid in self.shown and self.datagrams < MAX_DATAGRAMS:
            self.datagrams += 1
            self.events.append(event)

    def take(self, counters: dict | None, now: float) -> dict | None:
        """The next batch, or None when nothing happened since the last one."""
        self.stride = max(1, math.ceil(self.arrivals / self.max_new_routes))
        self.arrivals = 0
        self.latency.advance(now)
        points = self.latency.take_unsent()
        counters = counters if counters is not None else self.last_counters
        if not self.events and not points and not self.omitted and counters == self.last_counters:
            return None
        batch = {
            "events": self.events,
            "counters": counters or {},
            "omitted": self.omitted,
            "latency": points,
            "latency_now": self.latency.now(),
        }
        if self.routed:
            batch["routed"] = self.routed
        self.events, self.new_routes, self.omitted, self.datagrams = [], 0, 0, 0
        self.routed = {}
        self.last_counters = counters
        return batch


class EventRelay:
    """Follows the balancer's `GET /events` and publishes a `batch` about every 50 ms."""

    def __init__(
        self,
        admin_address: str,
        publish: Callable[[str, Any], None],
        counters: Callable[[], dict | None],
        sleep: Callable[[float], None],
        batch_s: float = BATCH_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.admin_address = admin_address
        self.publish = publish
        self.counters = counters
        self.sleep = sleep
        self.batch_s = batch_s
        self.clock = clock
        self.wall = wall
        self.builder = BatchBuilder()
        self.stopped = False
        self.connected = False
        self.latest: dict | None = None  # the counters read after the last batch
        self.watch: Callable[[dict], None] | None = None  # sees every event, unsampled
        self._reset_history = False

    def history(self) -> list[dict]:
        # After a reset the chart starts afresh at once, even before the relay applies it.
        return [] if self._reset_history else list(self.builder.latency.points)

    def reset_history(self) -> None:
        """Start the latency chart afresh (done at the next batch, in the relay's own task)."""
        self._reset_history = True

    def stop(self) -> None:
        self.stopped = True

    def run(self) -> None:
        """Follow the stream until stopped, reconnecting if the balancer closes it."""
        while not self.stopped:
            try:
                self._follow()
            except (OSError, ValueError) as exc:
                if self.connected and not self.stopped:  # say it once, not at every retry
                    log.warning("event stream from the balancer broke: %s", exc)
            self.connected = False
            if not self.stopped:
                self.sleep(RECONNECT_S)

    def _follow(self) -> None:
        host, _, port = self.admin_address.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=2.0) as sock:
            sock.sendall(REQUEST)
            self.connected = True
            reader = LineReader()
            self.poll()
            next_batch = self.clock() + self.batch_s
            while not self.stopped:
                wait = next_batch - self.clock()
                if wait > 0:
                    self._read(sock, reader, wait)
                    continue
                self._read(sock, reader, 0.0)  # what arrived meanwhile belongs in this batch
                self.flush()
                # A steady beat: the next batch is due one period after this one was due,
                # not one period after this flush (and its counter poll) finished.
                next_batch += self.batch_s
                if next_batch < self.clock():
                    next_batch = self.clock() + self.batch_s

    def _read(self, sock: socket.socket, reader: LineReader, wait: float) -> None:
        """Take in what the balancer sent, waiting up to `wait` s for it (0: what is there now)."""
        while True:
            sock.settimeout(wait)
            try:
                data = sock.recv(256 * 1024)
            except (TimeoutError, BlockingIOError, InterruptedError):
                return
            if not data:
                raise ConnectionError("the balancer closed the event stream")
            now = self.wall()
            for line in reader.feed(data):
                event = json.loads(line)
                self.builder.add(event, now)
                if self.watch is not None:
                    self.watch(event)
            if wait:
                return

    def flush(self) -> None:
        """Publish one batch (the events since the last one, the counters last read), then poll.

        The counters are read after publishing, for the next batch, so the events never
        wait for the two APIs to answer (tens of ms under heavy traffic). They are then one
        batch older than the events, so a batch draws every decision its counters count,
        and when traffic stops the next batch brings the final, exact numbers.
        """
        if self._reset_history:
            self._reset_history = False
            self.builder.latency = LatencyHistory()
            self.poll()  # the counters read before the reset are out of date
        batch = self.builder.take(self.latest, self.wall())
        if batch is not None:
            self.publish("batch", batch)
        self.poll()

    def poll(self) -> None:
        """Read exact counters now, for the next batch."""
        try:
            self.latest = self.counters()
        except Exception as exc:  # a broken poll must not stop the stream; show old numbers
            log.warning("could not read counters: %s", exc)
            self.latest = None
