"""Opening a lesson: make the lab exactly what a lesson needs (backends, knobs, balancer, traffic).

The handlers of `open_lesson`, `reset_lesson` and `default_lab` (see
lab.web.actions for the others). Counters are zeroed at the end, so a lesson starts from nothing.
"""

from __future__ import annotations

import time
from typing import Any

from lab.lessons.settings import DEFAULT_KNOBS, LabSetup
from lab.web import actions, compare, https
from lab.web.default_lab import default_setup
from lab.web.fields import CommandError
from lab.web.records import KNOB_FLAGS, RUNNING, BackendProcess

DRAIN_S = 3.0  # how long opening a lesson waits for requests in flight to finish


def open_lesson(lab: Any, slug: str) -> None:
    """Make the lab exactly what the lesson needs: backends, knobs, balancer, traffic."""
    lesson = lab.lessons.get(slug)
    if lesson is None:
        known = ", ".join(item.slug for item in lab.lessons.lessons()) or "none"
        raise CommandError(f"no lesson {slug!r} (lessons: {known})")
    open_setup(lab, lesson.setup)
    lab.lesson = lesson


def default_lab(lab: Any) -> None:
    """Leave the lesson: the lab `lb-lab serve` started (its backends, no pools or rules)."""
    open_setup(lab, default_setup(lab.settings))
    lab.lesson = None


def open_setup(lab: Any, setup: LabSetup) -> None:
    """Make the lab exactly this: backends, knobs, balancer, traffic (counters zeroed)."""
    if getattr(lab, "right", None) is not None:  # a lesson starts from one lab
        compare.stop(lab)
    quiet_traffic(lab)
    started = [name for name in setup.names if name not in lab.backends]
    try:
        for wanted in setup.backends:
            lesson_backend(lab, wanted.name, wanted.knobs)
        lesson_balancer(lab, setup)
    except BaseException:
        for name in started:
            lab.stop_backend(name)
        raise
    for name in [n for n in lab.backends if n not in setup.names]:
        lab.stop_backend(name)
    lesson_traffic(lab, setup)
    actions.reset(lab)
    if setup.balancers > 1:  # a second balancer on these backends, the clients split (reset)
        compare.start(lab, same_backends=True)
        lesson_traffic(lab, setup)  # the traffic generator was started afresh for both
    if lab.traffic is not None and not setup.traffic["paused"]:
        actions.resume(lab)


def lesson_traffic(lab: Any, setup: LabSetup) -> None:
    """The lesson's traffic settings (all but paused), on connections opened afresh."""
    if lab.traffic is not None:
        actions.set_traffic(lab, **{k: v for k, v in setup.traffic.items() if k != "paused"})
        actions.reconnect_traffic(lab)


def reset_lesson(lab: Any, slug: str) -> None:
    open_lesson(lab, slug)


def lesson_balancer(lab: Any, setup: LabSetup) -> None:
    """Give the balancer the lesson's config, every backend and the algorithm afresh."""
    addresses = {name: lab.backends[name].address for name in setup.names}
    document = setup.balancer_document(addresses)
    # As in a new balancer: no response times, rotation or tie-break memory carried
    # over from before, so a lesson's first decisions are the same every time. One
    # update, so nobody sees the lab half-way between the two.
    lab.put_config(document, fresh=True)
    if document.get("tls", {}).get("mode", "off") == "off":  # a lesson's own HTTPS: later
        https.plain_again(lab)


def lesson_backend(lab: Any, name: str, knobs: dict[str, Any]) -> None:
    """Have backend `name` running with exactly these knobs."""
    record = lab.backends.get(name)
    if record is None:
        record = BackendProcess(name, "")
        lab.backends[name] = record
        record.knobs.update({k: v for k, v in knobs.items() if k in KNOB_FLAGS})
        record.other_knobs = {
            k: v for k, v in knobs.items() if k not in KNOB_FLAGS and v != DEFAULT_KNOBS[k]
        }
        lab.start_backend(name)
        return
    if record.process != RUNNING:
        actions.restart_backend(lab, name)
    current = {**DEFAULT_KNOBS, **record.knobs, **record.other_knobs}
    changed = {k: v for k, v in knobs.items() if current.get(k) != v}
    if changed:
        lab.backend_api(record).call("PUT", "/_lab/knobs", changed)
        record.remember(changed)


def quiet_traffic(lab: Any) -> None:
    """Pause the traffic and give requests in flight a moment to finish."""
    if lab.traffic is None:
        return
    actions.pause(lab)
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        state = lab.traffic_state()
        if state is None or state["counters"]["in_flight"] == 0:
            return
        lab.sleep(0.02)
