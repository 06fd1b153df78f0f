"""The lab described: the `state` every browser gets, and the counters the relay polls.

A part of LabController (lab.web.controller): it reads the balancer's and the
traffic generator's /state (numbering the balancer's readings so the page
keeps the newer counters) and builds the page's `state` from them
(lab.web.snapshot), with the lesson, the config snippets, the classroom and
the comparison.
"""

from __future__ import annotations

import logging

from lab.lessons.snippets import from_state, snippets
from lab.web import actions, compare, snapshot
from lab.web.api import ApiError, JsonApi
from lab.web.commands import CommandError

log = logging.getLogger(__name__)


class LabState:
    """Read the lab's processes and tell the browsers what they say (a LabController's part)."""

    def _poller(self, key: str, address: str, who: str) -> JsonApi:
        # The relay polls from its own task: its own connections, never a command's.
        api = self._pollers.get(key)
        if api is None or api.address != address:
            api = self._pollers[key] = JsonApi(address, who, timeout=2.0)
        return api

    def counters(self) -> dict:
        """Exact counters now: the balancer's per backend, and the traffic generator's."""
        # The traffic generator first: a request it counts as completed passed through the
        # balancer, which counted it before answering, so a balancer read after it has every
        # one (read the other way round, a batch could say "6 completed" with a backend's
        # share of them still missing).
        traffic = self.traffic_state(poll=True)
        balancer = self._read(self._poller("balancer", self.addresses["admin"], "the balancer"))
        return snapshot.counters(balancer, traffic)

    def _read(self, api: JsonApi) -> dict:
        """The balancer's /state, numbered in the order readings come back.

        A command's `state` and the relay's batches read the balancer apart, and a
        state can reach the page after a batch that read later; the number lets the
        page keep the newer counters (see `read` in lab.web.app).
        """
        state = api.get("/state")
        state["read"] = next(self._reads)
        return state

    def traffic_state(self, poll: bool = False) -> dict | None:
        """The traffic generator's state: what it sends here (the left side's, if comparing)."""
        traffic = self.traffic
        if traffic is None:
            return None
        api = self._poller("traffic", traffic.address, "traffic") if poll else traffic
        try:
            state = api.get("/state")
        except ApiError:
            return None
        return compare.traffic_side(state, 0) if self.right is not None else state

    def snapshot(self) -> dict:
        """The full `state` every browser gets on connect and after every change."""
        balancer = self._read(self.balancer_api())
        state = snapshot.snapshot(
            balancer,
            self.traffic_state(),
            sorted(self.backends.values(), key=lambda r: (r.number, r.name)),
            traffic_error=self.traffic_error,
            history=self.relay.history() if self.relay else [],
            problem=self.problem,
            max_backends=actions.MAX_BACKENDS,
        )
        lesson = self.lesson
        state["lesson"] = {"slug": lesson.slug, "title": lesson.title} if lesson else None
        state["config_snippets"] = snippets(from_state(balancer))
        state["classroom"] = self.room.public()
        state["compare"] = compare.describe(self)
        return state

    def describe(self) -> dict | None:
        """`snapshot`, or None (logged) when the balancer cannot say."""
        try:
            return self.snapshot()
        except (ApiError, CommandError) as exc:
            log.warning("could not describe the lab: %s", exc)
            return None

    def publish_state(self) -> None:
        """Send every browser the lab's state now (a comparison's right side calls this)."""
        self._publish_state()

    def _publish_state(self) -> None:
        state = self.describe()
        if state is not None:
            self.publish("state", state)
