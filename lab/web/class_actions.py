"""The presenter's classroom commands: move the class, ask it a question, reveal, step mode.

Handlers as in lab.web.actions (`handler(lab, **fields)`), declared in the
command table, so only the presenter may send them (lab.web.access). They
change the room (lab.web.room), which every page sees; the traffic is held
(paused) while a question is open or step mode is on, as lab state, and runs
again when the last hold goes if it ran before.
"""

from __future__ import annotations

from typing import Any

from lab.web import actions
from lab.web.fields import CommandError

REVEAL_WAIT_S = 10.0  # the decision of one request reaches the relay in milliseconds


def set_position(
    lab: Any, section: int, panel: bool, presenter_view: bool, lesson: str = ""
) -> None:
    """Where the presenter is: the viewers who follow go there too."""
    if lesson and lab.lessons.get(lesson) is None:
        raise CommandError(f"no lesson {lesson!r}")
    lab.room.move(lesson, section, panel, presenter_view)


def set_step(lab: Any, on: bool) -> None:
    """Step mode for everyone: the traffic holds, and each Step sends one request."""
    if on:
        _hold(lab, "step")
    else:
        _release(lab, "step")


def step(lab: Any) -> None:
    """Send one request in step mode; every page shows its decision."""
    actions.send(lab, 1)
    lab.room.stepped()


def ask_class(lab: Any, slug: str, index: int) -> None:
    """Open a lesson's `predict` to the class: every viewer answers on their own device."""
    directive = _predict(lab, slug, index)
    _hold(lab, "round")  # the next request must be the one the question is about
    lab.room.open_round(slug, index, directive.question, tuple(directive.choices))


def reveal(lab: Any) -> None:
    """Send the question's request, and show everyone the real decision and its reason; or,
    for a question judged by claims, run its experiment and show everyone the measurement
    and the choice it bears out (lab.web.lesson_checks, the CI runner's own code)."""
    from lab.web.commands import COMMANDS, parse_command  # the table names this handler

    question = lab.room.open_question()
    directive = _predict(lab, question.slug, question.index)

    def run(step: dict) -> None:
        command = parse_command(step)
        action = COMMANDS[command.action]
        action.run(lab, **command.fields)
        if action.both_sides and lab.right is not None:
            action.run(lab.right, **command.fields)  # as a command from the page would
        if action.announces:
            # Each step's state before the next step's events, as if the page had sent it:
            # a page that follows changes (the hashing moves) sees a backend added before
            # the requests that show who moved.
            lab.publish_state()

    if directive.judges:  # a number, not a backend: its claims judge the choices
        if lab.checks is None:
            raise CommandError("the lab cannot measure yet; is it running?")
        outcome = lab.checks.judge(directive, run)
        # As the classroom message declares it: the answer ("" if none fits) and why, which
        # carries the measured numbers.
        lab.room.reveal({"answer": outcome["answer"] or "", "reason": outcome["reason"]})
        return
    lab.room.want_route()
    for step in directive.steps:
        run(step)
    route = lab.room.next_route(REVEAL_WAIT_S)
    if route is None:
        raise CommandError(f"no decision came back in {REVEAL_WAIT_S:g} s; is the lab running?")
    lab.room.reveal({"answer": str(route.get("backend")), "reason": str(route.get("reason", ""))})


def end_question(lab: Any) -> None:
    """Close the question; the traffic runs again if nothing else holds it."""
    lab.room.close_round()
    _release(lab, "round")


def _predict(lab: Any, slug: str, index: int) -> Any:
    lesson = lab.lessons.get(slug)
    if lesson is None:
        raise CommandError(f"no lesson {slug!r}")
    if not 0 <= index < len(lesson.directives) or lesson.directives[index].kind != "predict":
        raise CommandError(f"block {index} of {slug!r} is not a question (predict)")
    return lesson.directives[index]


def _hold(lab: Any, why: str) -> None:
    traffic = lab.traffic_state()
    running = traffic is not None and not traffic["paused"]
    if lab.room.hold(why, running):
        actions.pause(lab)


def _release(lab: Any, why: str) -> None:
    if lab.room.release(why) and lab.traffic is not None:
        actions.resume(lab)
