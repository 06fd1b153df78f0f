"""Live lesson checks: the page's "what you should see" boxes, worked out by the server.

The page sends the Socket.IO event `check` with `{"slug": "round-robin", "index": 4}`;
the lab that runs the lesson (LabController.check, in the lab service) answers
(the index of an `expect` directive in that lesson) and gets back

    {"ok": true, "holds": true | false, "checks": [{"text": "routed.b1 == 2", "holds": true,
     "values": {"routed.b1": 2}, "error": ""}, ...], "routes": {...} | null}

or `{"ok": false, "error": "..."}`. The numbers are the CI lesson runner's own
(lab.lessons.runner.Runner.measurements, lab.lessons.measure, lab.lessons.claims):
one implementation of the claim language, not a copy in JavaScript. Counting
windows begin, as in the runner, after each command that zeroes the counters.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from lab.lessons.claims import ClaimError
from lab.lessons.directives import WINDOW_STARTS, Expect, Predict
from lab.lessons.errors import LessonRunError
from lab.lessons.measure import routes
from lab.lessons.runner import QUIET_WAIT_S, Runner
from lab.web.api import ApiError
from lab.web.fields import CommandError

# Commands after which the lab counts afresh (the runner's WINDOW_STARTS, and opening a lesson).
STARTS_A_WINDOW = (*WINDOW_STARTS, "open_lesson", "default_lab")

CATCH_UP_S = 2.0  # how long a check waits for the event stream to catch up with the counters

log = logging.getLogger(__name__)


class LiveChecks:
    """The runner's measurements of one running lab, kept up to date with its windows."""

    def __init__(self, controller: Any) -> None:
        self.controller = controller
        self.runner = Runner(controller, controller.handle)

    def before_command(self, data: Any) -> None:
        """Before the counters are zeroed, let the events catch up (as the runner does), so
        that no decision counted before the reset lands in the new window."""
        if isinstance(data, dict) and data.get("action") in STARTS_A_WINDOW:
            self._catch_up()
            self.runner.close_window()

    def _catch_up(self) -> None:
        with contextlib.suppress(LessonRunError, ApiError):
            self.runner._wait(self.runner.caught_up, CATCH_UP_S, "the events to catch up")

    def after_command(self, data: Any, answer: dict) -> None:
        if answer.get("ok") and isinstance(data, dict) and data.get("action") in STARTS_A_WINDOW:
            self.runner.mark_window()

    def judge(self, question: Predict, run: Callable[[dict], None]) -> dict:
        """A judged `predict` revealed (lab.web.class_actions): carry out its `run` with
        `run` (one command each), counting in windows as the page's commands do, then judge
        its choices on the numbers, as the CI runner does (Runner.predict_judged)."""
        runner = self.runner
        try:
            for turn in range(question.repeat):
                for step in question.steps:
                    self.before_command(step)
                    run(step)
                    self.after_command(step, {"ok": True})
                if turn + 1 < question.repeat:
                    runner._wait(runner.quiet, QUIET_WAIT_S, "every answer between turns")
            return question.judge(runner.settle(question.when, question.wait_s))
        except LessonRunError as exc:
            raise CommandError(f"could not judge the answers: {exc}") from None
        except ApiError as exc:
            raise CommandError(f"could not read the lab's numbers: {exc}") from None

    def check(self, data: Any) -> dict:
        """Evaluate one `expect` of a lesson now; the answer documented above."""
        if not isinstance(data, dict):
            return {"ok": False, "error": 'a check is {"slug": ..., "index": ...}'}
        lesson = self.controller.lessons.get(data.get("slug"))
        index = data.get("index")
        if lesson is None:
            return {"ok": False, "error": f"no lesson {data.get('slug')!r}"}
        if not isinstance(index, int) or not 0 <= index < len(lesson.directives):
            return {"ok": False, "error": f"no directive {index!r} in {lesson.slug}"}
        directive = lesson.directives[index]
        if not isinstance(directive, Expect):
            return {"ok": False, "error": f"directive {index} of {lesson.slug} checks nothing"}
        try:
            self._catch_up()  # count once every decision the balancer made is in the events
            metrics = self.runner.measurements()
        except ApiError as exc:
            return {"ok": False, "error": f"could not read the lab's numbers: {exc}"}
        results = [_claim(check, metrics) for check in directive.checks]
        answer: dict[str, Any] = {"ok": True, "checks": results, "routes": None}
        if directive.routes is not None:
            seen = [e["backend"] for e in routes(self.runner.window())]
            answer["routes"] = {"want": list(directive.routes), "seen": seen[:20]}
            results.append(
                {
                    "text": f"the decisions went to {', '.join(directive.routes)}",
                    "holds": seen == list(directive.routes),
                    "values": {},
                    "error": "",
                }
            )
        answer["holds"] = all(r["holds"] for r in results)
        return answer

    def close(self) -> None:
        self.runner.close()


def _claim(check: Any, metrics: dict[str, float]) -> dict:
    values = {name: metrics.get(name) for name in check.names}
    try:
        return {"text": check.text, "holds": check.holds(metrics), "values": values, "error": ""}
    except ClaimError as exc:
        return {"text": check.text, "holds": False, "values": values, "error": str(exc)}
