"""The classroom as lab state: where the presenter is, how many watch, the class's question.

It lives with the lab (in the lab service, beside the LabController), not in a
web front, so every page on every front sees one room and none is stale:

- the presenter's *position* (lesson, section, lesson panel, presenter view),
  which viewers follow;
- the viewer *count*: each web front reports its own viewers with its id, the
  room sums the reports and forgets a front that stopped reporting (it died);
- the prediction *round*: the options of one `predict`, each viewer's one vote
  (keyed by a random per-browser id, so a change of mind moves the vote), the
  tally per option, and once revealed the real outcome;
- the *holds* on traffic (step mode, an open round): the traffic is paused while
  any hold stands, and resumes when the last one goes if it ran before.

The options are strings and the outcome is one of them plus a reason, so a
question whose answer is not a backend (a share, yes/no, a count checked by a
claim) fits the same round: only the judge that finds the outcome differs.

Pure: no I/O; the clock is injected. Changes mark the room `dirty`; the lab
publishes a `classroom` message for them (at most every BROADCAST_S).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.web.fields import CommandError

REPORT_S = 2.0  # a web front reports its viewers this often
STALE_S = 6.0  # a front silent this long has gone: its viewers no longer count
BROADCAST_S = 0.1  # changes are sent to every page at most this often
MAX_VOTERS = 10_000  # per round: a flood of made-up viewer ids cannot grow it without bound
MAX_FRONTS = 64
VIEWER_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
VIEWER_RULE = "viewer must be this browser's id: 8-64 letters, digits, - or _"
FRONT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_VIEWERS_REPORTED = 1_000_000


@dataclass
class Round:
    """One class question: its options, one vote per viewer, and (once revealed) the outcome."""

    id: int
    slug: str
    index: int
    question: str
    options: tuple[str, ...]
    votes: dict[str, str] = field(default_factory=dict)  # viewer id -> option
    outcome: dict | None = None  # {"answer": option, "reason": why}

    def tally(self) -> dict[str, int]:
        counts = dict.fromkeys(self.options, 0)
        for option in self.votes.values():
            counts[option] += 1
        return counts

    def public(self) -> dict:
        """What every page sees: counts, never who voted what."""
        return {
            "id": self.id,
            "slug": self.slug,
            "index": self.index,
            "question": self.question,
            "options": list(self.options),
            "tally": self.tally(),
            "answers": len(self.votes),
            "status": "revealed" if self.outcome else "open",
            "outcome": self.outcome,
        }


class Room:
    """The classroom's shared state; thread-safe (commands and reports come from many threads)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.position = {"lesson": "", "section": 0, "panel": False, "presenter_view": False}
        self.fronts: dict[str, tuple[int, float]] = {}  # front id -> (viewers, reported at)
        self.round: Round | None = None
        self.holds: set[str] = set()  # "step", "round": why the traffic is paused
        self.resume_after = False  # the traffic ran before the first hold
        self._rounds = 0
        self.steps = 0  # Step presses: every page shows the decision of the one just sent
        self._viewers = 0
        self.dirty = False
        self._route: dict | None = None  # the decision a reveal waits for
        self._route_wanted = threading.Event()
        self._route_seen = threading.Event()

    # -- what every page sees ------------------------------------------------------------

    def public(self) -> dict:
        with self._lock:
            return {
                "position": dict(self.position),
                "viewers": self._count(),
                "step": "step" in self.holds,
                "steps": self.steps,
                "holds": sorted(self.holds),
                "round": self.round.public() if self.round else None,
            }

    def _count(self) -> int:
        now = self.clock()
        return sum(n for n, at in self.fronts.values() if now - at <= STALE_S)

    def take_dirty(self) -> bool:
        """Did anything change since the last call? (A front going stale counts.)"""
        with self._lock:
            count = self._count()
            changed = self.dirty or count != self._viewers
            self.dirty, self._viewers = False, count
            return changed

    # -- the presenter -------------------------------------------------------------------

    def move(self, lesson: str, section: int, panel: bool, presenter_view: bool) -> None:
        with self._lock:
            self.position = {
                "lesson": lesson,
                "section": section,
                "panel": panel,
                "presenter_view": presenter_view,
            }
            self.dirty = True

    def open_round(self, slug: str, index: int, question: str, options: tuple[str, ...]) -> Round:
        with self._lock:
            self._rounds += 1
            self.round = Round(self._rounds, slug, index, question, options)
            self.dirty = True
            return self.round

    def reveal(self, outcome: dict) -> None:
        with self._lock:
            if self.round is None:
                raise CommandError("no question is open")
            self.round.outcome = outcome
            self.dirty = True

    def close_round(self) -> None:
        with self._lock:
            self.round = None
            self.dirty = True

    def open_question(self) -> Round:
        """The round a reveal is for; CommandError if there is none or it was revealed."""
        with self._lock:
            if self.round is None:
                raise CommandError("no question is open: ask the class first")
            if self.round.outcome is not None:
                raise CommandError("this question was already revealed")
            return self.round

    def stepped(self) -> None:
        with self._lock:
            self.steps += 1
            self.dirty = True

    # -- holds on the traffic ------------------------------------------------------------

    def hold(self, why: str, running: bool) -> bool:
        """Hold the traffic for `why`; True if the caller must pause it now (the first hold)."""
        with self._lock:
            first = not self.holds
            if first:
                self.resume_after = running
            self.holds.add(why)
            self.dirty = True
            return first and running

    def release(self, why: str) -> bool:
        """Let go of `why`; True if the caller must resume the traffic now (the last hold)."""
        with self._lock:
            if why not in self.holds:
                return False
            self.holds.discard(why)
            self.dirty = True
            return not self.holds and self.resume_after

    # -- what viewers and fronts send (not commands: no presenter needed) ----------------

    def take(self, data: Any) -> dict:
        """A viewer's answer or a front's viewer count; the answer to send back."""
        if not isinstance(data, dict):
            return {"ok": False, "error": 'expected {"kind": "answer" | "viewers", ...}'}
        kind = data.get("kind")
        try:
            if kind == "answer":
                self.answer(data.get("round"), data.get("option"), data.get("viewer"))
            elif kind == "viewers":
                self.report(data.get("front"), data.get("count"))
            else:
                return {"ok": False, "error": f"unknown kind {str(kind)[:40]!r}: answer or viewers"}
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True}

    def answer(self, round_id: Any, option: Any, viewer: Any) -> None:
        """Count `viewer`'s vote for `option` (once: a second answer moves the vote)."""
        if not isinstance(viewer, str) or not VIEWER_ID.fullmatch(viewer):
            raise CommandError(VIEWER_RULE)
        with self._lock:
            current = self.round
            if current is None or round_id != current.id or isinstance(round_id, bool):
                raise CommandError("that question is not open any more")
            if current.outcome is not None:
                raise CommandError("too late: the answer was revealed")
            if not isinstance(option, str) or option not in current.options:
                raise CommandError(f"answer one of: {', '.join(current.options)}")
            if viewer not in current.votes and len(current.votes) >= MAX_VOTERS:
                raise CommandError("this question has all the answers it can count")
            current.votes[viewer] = option
            self.dirty = True

    def report(self, front: Any, count: Any) -> None:
        """A web front's count of its own viewers (a front that stops reporting stops counting)."""
        if not isinstance(front, str) or not FRONT_ID.fullmatch(front):
            raise CommandError("front must be the web front's id")
        if isinstance(count, bool) or not isinstance(count, int):
            raise CommandError("count must be a whole number")
        if not 0 <= count <= MAX_VIEWERS_REPORTED:
            raise CommandError(f"count must be 0-{MAX_VIEWERS_REPORTED}")
        with self._lock:
            now = self.clock()
            self.fronts = {f: r for f, r in self.fronts.items() if now - r[1] <= STALE_S}
            if front not in self.fronts and len(self.fronts) >= MAX_FRONTS:
                raise CommandError("too many web fronts report to this lab")
            self.fronts[front] = (count, now)
            self.dirty = True

    # -- the decision a reveal waits for -------------------------------------------------

    def want_route(self) -> None:
        """From now on, keep the next route decision the balancer reports."""
        self._route = None
        self._route_seen.clear()
        self._route_wanted.set()

    def saw(self, event: dict) -> None:
        """Every event the lab's relay reads (from its own thread)."""
        if self._route_wanted.is_set() and event.get("type") == "route":
            self._route_wanted.clear()
            self._route = event
            self._route_seen.set()

    def next_route(self, timeout: float) -> dict | None:
        """The decision kept since `want_route`, waiting up to `timeout` s; None if none came."""
        found = self._route_seen.wait(timeout)
        self._route_wanted.clear()
        return self._route if found else None
