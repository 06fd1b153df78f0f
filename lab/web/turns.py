"""Commands take turns per part of the lab, so one slow process holds up only its own commands.

The guarantees the web lab gives its commands:

- Commands that need the same part (the balancer, the traffic generator, or the
  backends: their processes, knobs and the lab's list of them) run one at a
  time, each from start to end: a lesson never sees half of a `configure`, and
  two `set_weight`s reach the balancer whole, one after the other.
- Commands that need different parts run side by side. A balancer that takes
  5 s to answer one browser's `configure` does not hold up another browser's
  `pause`, which needs only the traffic generator.
- A command that needs several parts (`reset`, `open_lesson`) takes them all,
  always in the order of PARTS, so two such commands can never wait on each
  other for ever.
- After a change, every browser gets a `state` read once no command is running
  or waiting (the last to finish sends it, and it shows every change made
  meanwhile). Reading a state needs the balancer and the traffic generator, so
  a command that finished while another is stuck on one of them does not wait
  for it: its acknowledgement goes back at once and the `state` follows.

Which parts each action needs is declared in the command table (lab.web.commands).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

PARTS = ("backends", "balancer", "traffic")  # always taken in this order


@dataclass
class Turn:
    """One command's turn: set `changed` when it changed something; read `announce` after."""

    changed: bool = False
    announce: bool = False  # this command is the last one out: it sends the `state`


class Turns:
    """A lock per part of the lab, and a count of the commands running or waiting."""

    def __init__(self) -> None:
        self._locks = {part: threading.Lock() for part in PARTS}
        self._guard = threading.Lock()  # held only for bookkeeping, never across I/O
        self._commands = 0
        self._unannounced = False
        self._held: set[str] = set()

    @contextmanager
    def take(self, parts: Iterable[str]) -> Iterator[Turn]:
        """Wait for every part in `parts`, then hold them while the command runs."""
        wanted = [part for part in PARTS if part in set(parts)]
        turn = Turn()
        with self._guard:
            self._commands += 1
        taken: list[str] = []
        try:
            for part in wanted:
                self._locks[part].acquire()
                taken.append(part)
                with self._guard:
                    self._held.add(part)
            yield turn
        finally:
            for part in reversed(taken):
                with self._guard:
                    self._held.discard(part)
                self._locks[part].release()
            with self._guard:
                self._commands -= 1
                turn.announce = self._last_out(turn.changed)

    def changed_outside(self) -> bool:
        """Something changed with no command (a process exited): True if the caller announces it."""
        with self._guard:
            return self._last_out(True)

    def held(self) -> set[str]:
        """The parts some command holds now."""
        with self._guard:
            return set(self._held)

    def _last_out(self, changed: bool) -> bool:
        self._unannounced = self._unannounced or changed
        if self._commands or not self._unannounced:
            return False
        self._unannounced = False
        return True
