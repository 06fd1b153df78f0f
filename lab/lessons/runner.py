"""Run a lesson's experiment against a real lab, as a learner would, and check every claim.

The runner opens the lesson (its settings), then goes through its directives in
reading order: it presses every `do` button, answers every `predict` by sending
its request and reading the real decision, and checks every `expect` against
the lab's real numbers (lab.lessons.measure). Commands go through the same
`command` entry point the page uses; the numbers come from the balancer's,
the backends' and the traffic generator's own APIs, and the decisions from the
balancer's event stream, read whole (the page's batches may sample).

Waits are on conditions with a deadline, never on the clock alone. What a run
reads from the lab and waits on is in lab.lessons.lab_reading, the event
stream in lab.lessons.event_tap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.lessons.catalog import Lesson
from lab.lessons.claims import Claim, ClaimError
from lab.lessons.directives import WINDOW_STARTS, Do, Expect, Predict
from lab.lessons.errors import LessonRunError
from lab.lessons.event_tap import Side, subscribed
from lab.lessons.lab_reading import LabReading
from lab.lessons.measure import BEFORE, routes
from lab.web.api import ApiError, JsonApi

PREDICT_WAIT_S = 10.0
QUIET_WAIT_S = 20.0

Command = Callable[[dict], dict]


@dataclass
class Outcome:
    """What one directive did: ok or not, and what the lab showed."""

    index: int
    kind: str
    ok: bool
    detail: str


@dataclass
class Run:
    slug: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def report(self) -> str:
        return "\n".join(
            f"{self.slug} #{o.index} {o.kind}: {'ok' if o.ok else 'FAILED'}: {o.detail}"
            for o in self.outcomes
        )


class Runner(LabReading):
    """Carries out lessons against one running lab (a started LabController)."""

    def __init__(self, controller: Any, command: Command) -> None:
        self.controller = controller
        self.command = command
        self.balancer = JsonApi(controller.addresses["admin"], "the balancer")
        self.tap = subscribed(controller.addresses["admin"])
        self._traffic = JsonApi(controller.addresses["traffic"], "the traffic generator")
        self.windows: list[int] = [0]  # where each counting window begins in tap.events
        self._backends: dict[tuple[str, str], JsonApi] = {}
        self.right: Side | None = None  # a comparison's right side, followed once one opens
        # Every measurement as the last counting window closed (read as before.NAME).
        self.closed: dict[str, float] = {}

    @property
    def traffic(self) -> JsonApi:
        """The traffic generator's API (a comparison starts a new generator: follow it)."""
        address = self.controller.addresses.get("traffic", self._traffic.address)
        if address != self._traffic.address:
            self._traffic.close()
            self._traffic = JsonApi(address, "the traffic generator")
        return self._traffic

    def close(self) -> None:
        self.tap.close()
        if self.right is not None:
            self.right.close()
        for api in [self.balancer, self._traffic, *self._backends.values()]:
            api.close()

    def followed_right(self) -> Side | None:
        """The right side followed, while it is the comparison open now (else let it go)."""
        side, right = self.controller.right, self.right
        if right is not None and (side is None or right.admin != side.addresses["admin"]):
            right.close()
            self.right = right = None
        return right

    def close_window(self) -> None:
        """Keep the numbers of the window about to end, for checks that compare with them
        (`p99 > 5 * before.p99`); called just before the counters are zeroed."""
        try:
            numbers = self.measurements()
        except (ApiError, LessonRunError, OSError):
            numbers = {}  # a lab in the middle of a change: nothing to compare with
        self.closed = {k: v for k, v in numbers.items() if not k.startswith(f"{BEFORE}.")}

    def mark_window(self) -> None:
        """A counting window begins now (the counters were just zeroed), on each side."""
        self.windows.append(len(self.tap))
        side = self.controller.right
        if side is None:
            if self.right is not None:
                self.right.close()
                self.right = None
        elif self.right is None or self.right.admin != side.addresses["admin"]:
            if self.right is not None:
                self.right.close()
            self.right = Side(side)  # a new comparison: its events from here
        else:
            self.right.windows.append(len(self.right.tap))

    # -- a whole lesson

    def run(self, lesson: Lesson) -> Run:
        result = Run(lesson.slug)
        self._send({"action": "pause"})  # whatever ran before, the lesson starts from quiet
        self._wait(self.quiet, QUIET_WAIT_S, "the lab to be quiet before the lesson")
        self._send({"action": "open_lesson", "slug": lesson.slug}, start_window=True)
        for index, directive in enumerate(lesson.directives):
            try:
                if isinstance(directive, Do):
                    outcome = self.press(directive)
                elif isinstance(directive, Predict):
                    outcome = self.predict(directive)
                else:
                    outcome = self.expect(directive)
            except (LessonRunError, ApiError) as exc:
                outcome = (False, str(exc))
            result.outcomes.append(Outcome(index, directive.kind, *outcome))
            if directive.kind != "expect" and not outcome[0]:
                break  # an experiment that could not be carried out cannot be checked
        return result

    # -- the three directives

    def press(self, button: Do) -> tuple[bool, str]:
        if button.refused is not None:
            return self.press_refused(button)
        for turn in range(button.repeat):
            for step in button.steps:
                self._send(step, start_window=step["action"] in WINDOW_STARTS)
            if button.wait or turn + 1 < button.repeat:
                self._wait(self.quiet, QUIET_WAIT_S, f"every answer after {button.label!r}")
        return True, f"pressed {button.label!r}" + (
            f" {button.repeat} times" if button.repeat > 1 else ""
        )

    def press_refused(self, button: Do) -> tuple[bool, str]:
        """A button the lab must refuse: some step is refused, saying the lesson's words."""
        for step in button.steps:
            starts = step["action"] in WINDOW_STARTS
            if starts:
                self._before_window(step)
            answer = self.command(step)
            if answer.get("ok"):
                if starts:
                    self._start_window(step)
                continue
            error = str(answer.get("error"))
            if button.refused.lower() not in error.lower():
                return False, f"{step} was refused, but not saying {button.refused!r}: {error}"
            return True, f"pressed {button.label!r}: refused, as the lesson says ({error})"
        return False, f"{button.label!r} should have been refused ({button.refused!r}), but was not"

    def predict(self, question: Predict) -> tuple[bool, str]:
        if question.judges:
            return self.predict_judged(question)
        # Earlier requests may still be in flight (a `do` with wait: false); their
        # decisions must be in before ours can be told apart from them.
        self._wait(self.all_routed, QUIET_WAIT_S, "every decision so far to be seen")
        start = len(self.tap)
        for step in question.steps:
            self._send(step, start_window=step["action"] in WINDOW_STARTS)
        first = self._wait(
            lambda: next(iter(routes(self.tap.since(start))), None),
            PREDICT_WAIT_S,
            "the decision a predict block asks about",
        )
        self._wait(self.quiet, QUIET_WAIT_S, "every answer after a predict block")
        chosen = first["backend"]
        said = f"the balancer chose {chosen} ({first['reason']})"
        if chosen not in question.choices:
            return False, f"{said}, which is not among the choices {list(question.choices)}"
        if question.answer is not None and chosen != question.answer:
            return False, f"the lesson's answer is {question.answer}, but {said}"
        return True, said

    def predict_judged(self, question: Predict) -> tuple[bool, str]:
        """Run the question's experiment, then judge every choice by its claim, on the
        numbers an `expect` right after it would read."""
        self.carry_out(question)
        outcome = question.judge(self.settle(question.when, question.wait_s))
        chosen, said = outcome["answer"], outcome["reason"]
        if chosen is None:
            return False, f"{question.question!r}: {said}"
        if question.answer is not None and chosen != question.answer:
            return False, f"the lesson's answer is {question.answer!r}, but the lab says " + (
                f"{chosen!r}: {said}"
            )
        return True, f"{chosen!r}: {said}"

    def carry_out(self, question: Predict) -> None:
        """A judged question's `run`, `repeat` times, each turn after every answer is in."""
        for turn in range(question.repeat):
            for step in question.steps:
                self._send(step, start_window=step["action"] in WINDOW_STARTS)
            if turn + 1 < question.repeat:
                self._wait(self.quiet, QUIET_WAIT_S, "every answer between a question's turns")

    def settle(self, when: Claim | None, wait_s: float) -> dict[str, float]:
        """Wait for `when` to hold (or, without one, for every answer), then measure."""
        if when is not None:
            condition = when

            def ready() -> bool:
                try:
                    return condition.holds(self.measurements())
                except ClaimError:
                    return False

            self._wait(ready, wait_s, f"'{condition.text}'")
        else:
            self._wait(self.quiet, wait_s, "every answer to be in")
        return self.measurements()

    def expect(self, claim: Expect) -> tuple[bool, str]:
        metrics = self.settle(claim.when, claim.wait_s)
        problems = []
        if claim.routes is not None:
            seen = [e["backend"] for e in routes(self.window())]
            if seen != list(claim.routes):
                problems.append(f"routes were {seen}, not {list(claim.routes)}")
        for check in claim.checks:
            values = ", ".join(f"{n} = {_shown(metrics.get(n))}" for n in check.names)
            try:
                if not check.holds(metrics):
                    problems.append(f"'{check.text}' is false ({values})")
            except ClaimError as exc:
                problems.append(f"'{check.text}' cannot be worked out: {exc} ({values})")
        if problems:
            return False, f"{claim.say!r}: " + "; ".join(problems)
        shown = [f"{n} = {_shown(metrics.get(n))}" for c in claim.checks for n in c.names]
        if claim.routes is not None:
            shown.insert(0, f"routes = {list(claim.routes)}")
        return True, f"{claim.say!r} holds ({', '.join(dict.fromkeys(shown))})"

    # -- helpers

    def _send(self, data: dict, start_window: bool = False) -> None:
        if start_window:
            self._before_window(data)
        answer = self.command(data)
        if not answer.get("ok"):
            raise LessonRunError(f"{data} was refused: {answer.get('error')}")
        if start_window:
            self._start_window(data)

    def _before_window(self, data: dict) -> None:
        """Make the lab quiet before its counters are zeroed.

        A count starts exactly only if no request is routed between the counters'
        reset and the window's start: such a request would be counted by the
        balancer and not by the events. A lesson (re)opens with its traffic paused,
        as the lab itself does it; a plain reset must find the traffic paused.
        """
        if data["action"] in ("open_lesson", "reset_lesson"):
            self.command({"action": "pause"})
        elif not self.traffic.get("/state")["paused"]:
            raise LessonRunError(
                f"{data['action']} while the traffic runs cannot be counted from an exact "
                "point; pause the traffic first (and resume it after)"
            )
        self._wait(self.quiet, QUIET_WAIT_S, "every answer before counting afresh")
        self.close_window()

    def _start_window(self, data: dict) -> None:
        if not self.traffic.get("/state")["paused"]:
            raise LessonRunError(
                f"{data['action']} left the traffic running, so its count has no exact start; "
                "start the lesson paused and resume the traffic with a button"
            )
        self.mark_window()


def _shown(value: float | None) -> str:
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)
