"""A Socket.IO test client that reads like a learner at the page (test_web_socket.py's).

It sends `command`s with their acknowledgement and keeps every message the
server sent it: the latest `state`, and the `batch` events and counters,
waited for with a deadline (events and counters travel apart).
"""

from __future__ import annotations

from conftest import wait_for

from lab.web.app import socketio


class Browser:
    """A Socket.IO test client that reads like a learner at the page."""

    def __init__(self, app) -> None:
        self.client = socketio.test_client(app)
        self.seen: list[dict] = []

    def command(self, **data) -> dict:
        return self.client.emit("command", data, callback=True)

    def received(self, name: str) -> list:
        self.seen += self.client.get_received()
        return [m["args"][0] for m in self.seen if m["name"] == name]

    def forget(self) -> None:
        self.received("state")
        self.seen.clear()

    def state(self) -> dict:
        return wait_for(lambda: (self.received("state") or [None])[-1], what="a state")

    def states(self) -> list[str]:
        """Each backend's state in the latest `state` this browser got."""
        latest = self.received("state")
        return [b["state"] for b in latest[-1]["backends"]] if latest else []

    def events_when(self, check, timeout: float = 5.0) -> list[dict]:
        """Every event received so far, once `check(events)` is true for them.

        Events and counters travel apart (counters are read from /state, events come
        from /events), so a test that saw a count waits for the events behind it too.
        """

        def look():
            events = [e for b in self.received("batch") for e in b["events"]]
            return events if check(events) else None

        return wait_for(look, timeout=timeout, what="batch events")

    def counters_when(self, check, timeout: float = 5.0) -> dict:
        """The first batch's counters for which `check(counters)` is true."""

        def look():
            return next((b["counters"] for b in self.received("batch") if check(b["counters"])), 0)

        return wait_for(look, timeout=timeout, what="batch counters")
