"""Read a lesson's fenced blocks into directives, checking each before a learner sees it.

The blocks and what they mean are described in lab.lessons.directives. Every
mistake is a LessonError that says what is wrong; a block's `run` is checked
as the page's commands are (lab.web.commands), and `Backends` follows the
lab's backend names through the steps, so a step naming a backend that is
not there is caught while the lesson loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from lab.lessons.claims import Claim, parse_claim
from lab.lessons.directives import DEFAULT_WAIT_S, SEND_ONE, Directive, Do, Expect, Predict
from lab.lessons.errors import LessonError
from lab.lessons.measure import known
from lab.web.commands import CommandError, parse_command

MAX_REPEAT = 50
MAX_WAIT_S = 60.0
NOT_IN_LESSONS = ("open_lesson",)  # a lesson may start itself over, not open another


@dataclass
class Backends:
    """The lab's backend names as a lesson's steps change them, to check names in steps."""

    initial: tuple[str, ...]
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = list(self.initial)

    def follow(self, command: dict) -> None:
        action, name = command["action"], command.get("name")
        if action == "reset_lesson":
            self.names = list(self.initial)
        elif name is not None and name not in self.names:
            raise LessonError(f"{action}: no backend {name!r} here (backends: {self.listing})")
        if action == "add_backend":
            free = next(n for n in range(1, 14) if f"b{n}" not in self.names)
            self.names.append(f"b{free}")
        elif action == "remove_backend":
            self.names.remove(name)

    @property
    def listing(self) -> str:
        return ", ".join(self.names) or "none"


def parse_directive(kind: str, body: str, slug: str, backends: Backends) -> Directive:
    """One fenced block's body; `backends` is followed through its steps."""
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise LessonError(f"the {kind} block is not valid YAML ({_first_line(exc)})") from None
    if not isinstance(data, dict):
        raise LessonError(f"a {kind} block holds a mapping, like 'label: ...'")
    parse = {"do": _do, "predict": _predict, "expect": _expect, "compare": _compare}[kind]
    return parse(data, slug, backends)


def _do(data: dict, slug: str, backends: Backends) -> Do:
    _only(data, "do", ("label", "run", "repeat", "wait", "refused"))
    wait = data.get("wait", True)
    if not isinstance(wait, bool):
        raise LessonError(f"wait must be true or false, got {wait!r}")
    refused = data.get("refused")
    if refused is not None and (not isinstance(refused, str) or not refused.strip()):
        raise LessonError(f"refused must be words the refusal says, got {refused!r}")
    repeat = data.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
        raise LessonError(f"repeat must be 1 to {MAX_REPEAT}, got {repeat!r}")
    steps = _steps(data.get("run"), slug, backends, required=True)
    for _ in range(repeat - 1):  # a repeated add_backend adds another each time
        for step in steps:
            backends.follow(step)
    if refused is not None and repeat != 1:
        raise LessonError("a button that is refused cannot repeat")
    label = _text(data, "label", "do")
    return Do(label, steps, repeat, wait, refused.strip() if refused is not None else None)


def _compare(data: dict, slug: str, backends: Backends) -> Do:
    """A button that opens a comparison: the page shows it as any other button."""
    _only(data, "compare", ("label", "left", "right", "seed", "traffic"))
    traffic = data.get("traffic", True)
    if not isinstance(traffic, bool):
        raise LessonError(f"traffic must be true or false, got {traffic!r}")
    if "right" not in data:
        raise LessonError("a compare block needs right: the right side's balancer settings")
    fields = {key: data[key] for key in ("left", "right", "seed") if key in data}
    run = [{"action": "pause"}, {"action": "compare", **fields}]
    if traffic:
        run.append({"action": "resume"})
    steps = _steps(run, slug, backends, required=True)
    label = data.get("label", "Compare them side by side")
    if not isinstance(label, str) or not label.strip():
        raise LessonError("label must be some text")
    return Do(label.strip(), steps, wait=not traffic)


def _predict(data: dict, slug: str, backends: Backends) -> Predict:
    _only(
        data, "predict", ("question", "choices", "answer", "run", "explain", "repeat", "when",
                          "wait_s"),
    )  # fmt: skip
    choices = data.get("choices", list(backends.names))
    if isinstance(choices, list) and any(isinstance(c, dict) for c in choices):
        return _judged(data, choices, slug, backends)
    extra = [key for key in ("repeat", "when", "wait_s") if key in data]
    if extra:
        raise LessonError(
            f"{extra[0]} is for questions judged by claims (choices like "
            "{say: about half, when: moved < 0.6}), not backend names"
        )
    if (
        not isinstance(choices, list)
        or len(choices) < 2
        or not all(isinstance(c, str) and c for c in choices)
    ):
        raise LessonError("choices must be a list of at least two backend names")
    steps = _steps(data.get("run", [SEND_ONE]), slug, backends, required=True)
    unknown = [c for c in choices if c not in backends.names]
    if unknown:
        raise LessonError(f"choice {unknown[0]!r} is not a backend here ({backends.listing})")
    answer = data.get("answer")
    if answer is not None and answer not in choices:
        raise LessonError(f"answer {answer!r} is not one of the choices")
    explain = data.get("explain", "")
    if not isinstance(explain, str):
        raise LessonError("explain must be text")
    question = _text(data, "question", "predict")
    return Predict(question, tuple(choices), answer, steps, explain.strip())


def _judged(data: dict, choices: list, slug: str, backends: Backends) -> Predict:
    """A predict whose choices are {say, when}: each answer is judged by its claim."""
    if len(choices) < 2:
        raise LessonError("choices must be a list of at least two answers")
    says, judges = [], []
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise LessonError(
                f"choices[{i}]: every choice is {{say: ..., when: ...}} once one is; got {choice!r}"
            )
        extra = sorted(set(choice) - {"say", "when"})
        if extra:
            raise LessonError(f"choices[{i}] takes say and when; unexpected {extra[0]!r}")
        say = choice.get("say")
        if isinstance(say, int | float) and not isinstance(say, bool):
            say = str(say)  # "10", "15", "20" read as numbers in YAML
        if not isinstance(say, str) or not say.strip():
            raise LessonError(f"choices[{i}] needs say: the answer as the learner reads it")
        if "when" not in choice:
            raise LessonError(f"choices[{i}] ({say.strip()!r}) needs when: the claim that makes "
                              "it right, like 'moved < 0.4'")  # fmt: skip
        says.append(say.strip())
        judges.append(_claim(choice["when"]))
    if len(set(says)) != len(says):
        raise LessonError("two choices say the same thing")
    repeat = data.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
        raise LessonError(f"repeat must be 1 to {MAX_REPEAT}, got {repeat!r}")
    steps = _steps(data.get("run", [SEND_ONE]), slug, backends, required=True)
    for _ in range(repeat - 1):
        for step in steps:
            backends.follow(step)
    answer = data.get("answer")
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        answer = str(answer)
    if answer is not None and answer not in says:
        raise LessonError(f"answer {answer!r} is not one of the choices ({', '.join(says)})")
    explain = data.get("explain", "")
    if not isinstance(explain, str):
        raise LessonError("explain must be text")
    when = data.get("when")
    question = _text(data, "question", "predict")
    return Predict(
        question, tuple(says), answer, steps, explain.strip(), tuple(judges), repeat,
        _claim(when) if when is not None else None, _wait_s(data),
    )  # fmt: skip


def _wait_s(data: dict) -> float:
    wait_s = data.get("wait_s", DEFAULT_WAIT_S)
    if isinstance(wait_s, bool) or not isinstance(wait_s, int | float):
        raise LessonError(f"wait_s must be a number of seconds, got {wait_s!r}")
    if not 0 < wait_s <= MAX_WAIT_S:
        raise LessonError(f"wait_s must be more than 0 and at most {MAX_WAIT_S:g}")
    return float(wait_s)


def _expect(data: dict, slug: str, backends: Backends) -> Expect:
    _only(data, "expect", ("say", "check", "routes", "when", "wait_s"))
    checks = data.get("check", [])
    if isinstance(checks, str):
        checks = [checks]
    if not isinstance(checks, list):
        raise LessonError("check must be a list of checks like 'routed.b1 == 2'")
    claims = tuple(_claim(text) for text in checks)
    routes = data.get("routes")
    if routes is not None:
        if not isinstance(routes, list) or not all(isinstance(r, str) for r in routes):
            raise LessonError("routes must be a list of backend names, like [b1, b2, b3]")
        routes = tuple(routes)
    if not claims and routes is None:
        raise LessonError("an expect block needs check or routes: something to check")
    when = data.get("when")
    wait_s = _wait_s(data)
    say = _text(data, "say", "expect")
    return Expect(say, claims, routes, _claim(when) if when is not None else None, wait_s)


def _claim(text: Any) -> Claim:
    claim = parse_claim(text)
    for name in claim.names:
        if not known(name):
            raise LessonError(f"check {claim.text!r} reads {name!r}, which is not a measurement")
    return claim


def _steps(value: Any, slug: str, backends: Backends, required: bool) -> tuple[dict, ...]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or (required and not value):
        raise LessonError("run must be a command like {action: send, count: 6}, or a list")
    steps = []
    for i, step in enumerate(value):
        if isinstance(step, dict) and step.get("action") in NOT_IN_LESSONS:
            raise LessonError(f"run[{i}]: a lesson cannot {step['action']}; link to it instead")
        if isinstance(step, dict) and step.get("action") == "reset_lesson":
            step = {"slug": slug, **step}
        try:
            command = parse_command(step)
        except CommandError as exc:
            raise LessonError(f"run[{i}]: {exc}") from None
        if command.action == "reset_lesson" and command.fields["slug"] != slug:
            raise LessonError(f"run[{i}]: a lesson can reset only itself")
        clean = {"action": command.action, **command.fields}
        try:
            backends.follow(clean)
        except LessonError as exc:
            raise LessonError(f"run[{i}]: {exc.message}") from None
        steps.append(clean)
    return tuple(steps)


def _only(data: dict, kind: str, allowed: tuple[str, ...]) -> None:
    extra = sorted(set(data) - set(allowed))
    if extra:
        raise LessonError(f"a {kind} block takes {', '.join(allowed)}; unexpected {extra[0]!r}")


def _text(data: dict, key: str, kind: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise LessonError(f"a {kind} block needs {key}: some text")
    return value.strip()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]
