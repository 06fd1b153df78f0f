"""The balancer's event stream as a lesson run reads it: whole, in order, in counting windows.

The runner (lab.lessons.runner) reads decisions from here, not from the
page's batches (which may sample). An `EventTap` keeps every event of one
balancer's GET /events; a `Side` follows a comparison's right side the same
way; `window_of` cuts out one counting window (a reset starts the next).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from typing import Any

from lab.lessons.errors import LessonRunError
from lab.lessons.measure import routes
from lab.web.api import JsonApi
from lab.web.relay import REQUEST, LineReader

SUBSCRIBE_TIMEOUT_S = 5.0


class EventTap:
    """Every event of the balancer's GET /events, kept in order, read on a thread of its own."""

    def __init__(self, admin_address: str) -> None:
        host, _, port = admin_address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5.0)
        self.sock.sendall(REQUEST)
        self.events: list[dict] = []
        self.error: Exception | None = None
        # Set at the first bytes: the balancer writes the stream's head and takes the reader
        # on in one step, so from then on every decision it makes is in this stream.
        self.taken = threading.Event()
        self.began = False  # the stream's first bytes came (taken may also mean it ended)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="event-tap", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        reader = LineReader()
        self.sock.settimeout(None)
        try:
            while data := self.sock.recv(256 * 1024):
                self.began = True
                self.taken.set()
                parsed = [json.loads(line) for line in reader.feed(data)]
                with self._lock:
                    self.events.extend(parsed)
        except (OSError, ValueError) as exc:
            self.error = exc
        self.taken.set()  # ended: `began` and `error` say whether it ever started

    def since(self, start: int, end: int | None = None) -> list[dict]:
        with self._lock:
            return self.events[start:end]

    def __len__(self) -> int:
        with self._lock:
            return len(self.events)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


def subscribed(admin_address: str) -> EventTap:
    """An EventTap that the balancer has taken on: a decision made after this returns is in
    it. (A burst sent before the balancer has read the reader's request would be counted
    by the balancer and missing here, and a counting window would never catch up.)"""
    tap = EventTap(admin_address)
    if not tap.taken.wait(SUBSCRIBE_TIMEOUT_S) or not tap.began:
        tap.close()
        raise LessonRunError(f"the balancer at {admin_address} did not take the event reader")
    return tap


class Side:
    """A comparison's right side as the runner follows it: its balancer and its events."""

    def __init__(self, lab: Any) -> None:
        self.admin = lab.addresses["admin"]
        self.balancer = JsonApi(self.admin, "the right side's balancer")
        self.tap = subscribed(self.admin)
        self.windows: list[int] = [0]

    def window(self, back: int = 0) -> list[dict]:
        return window_of(self.tap, self.windows, back)

    def caught_up(self) -> bool:
        routed = sum(b["total"] for b in self.balancer.get("/state")["backends"])
        return len(routes(self.window())) >= routed

    def close(self) -> None:
        self.tap.close()
        self.balancer.close()


def window_of(tap: EventTap, starts: list[int], back: int) -> list[dict]:
    """The events of one counting window (back=0: the current one, 1: the one before)."""
    at = len(starts) - 1 - back
    if at < 0:
        return []
    end = starts[at + 1] if at + 1 < len(starts) else None
    return tap.since(starts[at], end)
