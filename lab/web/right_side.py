"""The right side of a comparison: a lab of its own processes, fed by the left side's traffic.

See lab.web.compare. It is a LabController with its own supervisor, backends
and balancer, and no traffic generator: the left's sends it the same
arrivals, so its traffic numbers are the generator's second side. Its batches
go out marked `"side": "right"`; a change to it goes out in the left's `state`.
With `same_backends` it starts no backends: its balancer fronts the left's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lab.web.compare import copied_config, traffic_side
from lab.web.controller import LabController
from lab.web.records import KILLED, RUNNING, BackendProcess


class RightSide(LabController):
    """The right side: `start_side`, then `attach_to` the left."""

    def __init__(self, left: LabController, same_backends: bool = False) -> None:
        seed = left.settings.seed
        if same_backends and seed is not None:
            seed += 1  # a balancer of its own rolls its own dice (same ones: the same picks)
        settings = dataclasses.replace(
            left.settings, balancer_port=0, first_backend_port=0, seed=seed
        )
        super().__init__(settings, left._lessons)
        self.left = left
        self.same_backends = same_backends
        self.lesson = left.lesson
        # One numbering of readings for the lab and every right side it opens: a page keeps
        # counters only if they were read later (`read`), so a new comparison's must not
        # start again from 1 below the last one's.
        self._reads = left._reads

    def start_side(self, settings: dict) -> None:
        """The left's backends (names, knobs), a balancer with its settings, then ours."""
        if self.same_backends:
            self.backends = self.left.backends  # the very same records: one set of processes
            self._start_balancer()
            self.put_config(copied_config(self.left, self.backends), fresh=True)
            if settings:
                self.put_config(settings)
            return
        for name, record in self.left.backends.items():
            self.backends[name] = BackendProcess(
                name, "", knobs=dict(record.knobs), other_knobs=dict(record.other_knobs)
            )
        for name, record in list(self.left.backends.items()):
            self.start_backend(name)
            if record.process != RUNNING:  # killed or exited on the left: so here too
                self.supervisor.kill(name)
                self.backends[name].process = KILLED
        self._start_balancer()
        self.put_config(copied_config(self.left, self.backends), fresh=True)
        if settings:
            self.put_config(settings)

    def follow_backends(self) -> None:
        """Same backends: give our balancer the left's backends as they are now."""
        self.put_config({"backends": copied_config(self.left, self.backends)["backends"]})

    def traffic_state(self, poll: bool = False) -> dict | None:
        return traffic_side(self.left.traffic_state(poll), 1)

    def snapshot(self) -> dict:
        self.lesson = self.left.lesson
        state = super().snapshot()
        state.pop("compare", None)
        return state

    def attach_to(self, left: LabController) -> None:
        """Relay our events as the right side's batches; our changes go out in the left's state."""
        if left.start_task is None:
            return  # no web front (a test driving the controller itself)

        def publish(name: str, data: Any) -> None:
            if name == "batch":
                left.publish("batch", {**data, "side": "right"})
            elif not self.stopped:
                left.publish_state()

        self.attach(publish, left.start_task, left.sleep)
