"""What a lesson run reads from the lab: the measurements, whether the lab is quiet, and the waits.

A part of the Runner (lab.lessons.runner). Its measurements are the numbers
every `expect` and judged `predict` is checked against (lab.lessons.measure),
on each side of a comparison; `quiet`, `caught_up` and `all_routed` are the
conditions a run waits on before it counts, always with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lab.lessons.errors import LessonRunError
from lab.lessons.event_tap import window_of
from lab.lessons.measure import BEFORE, measure, routes
from lab.web.api import ApiError, JsonApi
from lab.web.compare import traffic_side

POLL_S = 0.02


class LabReading:
    """Measure the lab and wait on it (the Runner's part that reads, never changes, the lab)."""

    def window(self, back: int = 0) -> list[dict]:
        """The events of the current counting window (back=1: the one before it)."""
        return window_of(self.tap, self.windows, back)

    def measurements(self) -> dict[str, float]:
        """Every measurement; during a comparison each side's too, as left.NAME and right.NAME."""
        traffic = self.traffic.get("/state")
        left = self._measure(self.controller, self.balancer, traffic_side(traffic, 0), self)
        before = {f"{BEFORE}.{name}": value for name, value in self.closed.items()}
        right = self.followed_right()
        if right is None:
            return {**left, **before}
        side = self.controller.right
        numbers = self._measure(side, right.balancer, traffic_side(traffic, 1), right)
        return {
            **left,
            **{f"left.{name}": value for name, value in left.items()},
            **{f"right.{name}": value for name, value in numbers.items()},
            **before,
        }

    def _measure(self, lab: Any, balancer: JsonApi, traffic: dict | None, events: Any) -> dict:
        served = {}
        clients = []
        for name, record in list(lab.backends.items()):
            if record.process == "running":
                key = (name, record.address)
                api = self._backends.get(key) or self._backends.setdefault(
                    key, JsonApi(record.address, name, timeout=2.0)
                )
                try:
                    state = api.get("/_lab/state")
                except ApiError:
                    continue
                served[name] = state["counters"]["served"]
                clients.append(state.get("clients", {}))
        windows = [events.window(1), events.window()] if len(events.windows) > 1 else [
            events.window()
        ]  # fmt: skip
        return measure(balancer.get("/state"), traffic, served, windows, clients)

    def caught_up(self, balancer: dict | None = None) -> bool:
        """Every decision the balancer counted is in the events read so far (on each side)."""
        balancer = balancer or self.balancer.get("/state")
        routed = sum(b["total"] for b in balancer["backends"])
        if len(routes(self.window())) < routed:
            return False
        right = self.followed_right()
        return right is None or right.caught_up()

    def all_routed(self) -> bool:
        """Every request in flight has been routed, and its decision seen (Layer 7)."""
        balancer = self.balancer.get("/state")
        if balancer["mode"] == "http":
            in_flight = self.traffic.get("/state")["counters"]["in_flight"]
            if sum(b["active"] for b in balancer["backends"]) < in_flight:
                return False
        return self.caught_up(balancer)

    def quiet(self) -> bool:
        """Every request answered, and every decision on the balancer seen in the events
        (on both sides of a comparison)."""
        traffic = self.traffic.get("/state")
        if any(side["counters"]["in_flight"] for side in traffic.get("sides", [traffic])):
            return False
        balancer = self.balancer.get("/state")
        if not self.caught_up(balancer):
            return False
        right = self.followed_right()
        if right is not None and not idle(right.balancer.get("/state")):
            return False
        return idle(balancer)

    def _wait(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if self.tap.error is not None:
                raise LessonRunError(f"the event stream broke: {self.tap.error}")
            if time.monotonic() > deadline:
                raise LessonRunError(f"waited {timeout:g} s for {what}")
            time.sleep(POLL_S)


def idle(balancer: dict) -> bool:
    """No request in flight. At Layer 4 an open keep-alive connection (or a UDP flow, until
    its idle timeout) stays active, and that is quiet too."""
    return balancer["mode"] != "http" or not any(b["active"] for b in balancer["backends"])
