"""One web front's audience: who on it is a viewer, reported to the lab as a count.

The lab sums the counts of every front (lab.web.room) and forgets a front that
stops reporting, so several fronts add up and a front that dies stops counting.
A front reports when its count changed (at most every CHANGE_S) and at least
every REPORT_S, so the lab can tell it is alive.

It also binds each connection to the one viewer id it first answered with: a
page that sends answers under made-up ids to stuff the tally is refused.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from lab.web.room import REPORT_S

CHANGE_S = 0.2


class Audience:
    def __init__(self, front: str | None = None, clock: Callable[[], float] = time.monotonic):
        self.front = front or uuid.uuid4().hex[:16]
        self.clock = clock
        self._lock = threading.Lock()
        self._viewers: set[str] = set()  # sids
        self._voters: dict[str, str] = {}  # sid -> the viewer id it answers as
        self._changed = True
        self._reported_at = float("-inf")

    def joined(self, sid: str, viewer: bool) -> None:
        if viewer:
            with self._lock:
                self._viewers.add(sid)
                self._changed = True

    def left(self, sid: str) -> None:
        with self._lock:
            if sid in self._viewers:
                self._viewers.discard(sid)
                self._changed = True
            self._voters.pop(sid, None)

    def count(self) -> int:
        with self._lock:
            return len(self._viewers)

    def may_vote_as(self, sid: str, viewer: str) -> bool:
        """True if this connection answers as `viewer` (its first answer binds it)."""
        with self._lock:
            return self._voters.setdefault(sid, viewer) == viewer

    def due(self) -> dict | None:
        """The report to send now, or None (nothing changed, and the last one is fresh)."""
        with self._lock:
            now = self.clock()
            if not self._changed and now - self._reported_at < REPORT_S:
                return None
            self._changed, self._reported_at = False, now
            return {"kind": "viewers", "front": self.front, "count": len(self._viewers)}

    def report_forever(self, lab: Callable[[], Any], sleep: Callable[[float], None]) -> None:
        """Report to the lab `lab()` returns (None: not yet) until it stops."""
        while True:
            current = lab()
            if current is not None and getattr(current, "stopped", False):
                return
            report = self.due() if current is not None else None
            if report is not None and not current.classroom(report).get("ok"):
                with self._lock:
                    self._changed = True  # the lab did not take it (not up yet): again soon
            sleep(CHANGE_S)
