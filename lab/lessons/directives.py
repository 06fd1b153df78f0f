"""Directives: the fenced blocks in a lesson that act on the lab or check it.

A directive is a fenced code block whose info string is `do`, `predict`,
`expect` or `compare`, with a small YAML mapping inside:

    ```do
    label: Kill b2
    run:
      - {action: kill_backend, name: b2}
    ```

    ```do
    label: Try Layer 4
    run: {action: set_mode, mode: tcp}
    refused: routing rules need Layer 7   # the lab must refuse it, saying this
    ```

    ```predict
    question: Which backend gets the next request?
    choices: [b1, b2, b3]
    answer: b2          # optional: the test suite checks the real balancer agrees
    ```

    ```predict
    question: Add b4 under mod-N hashing. What share of the clients move?
    run:
      - {action: add_backend}
      - {action: reset}
      - {action: send, count: 32}
    choices:                                   # each answer is judged by a claim
      - {say: about a quarter, when: moved < 0.375}
      - {say: about a half, when: 0.375 <= moved < 0.625}
      - {say: about three quarters, when: moved >= 0.625}
    answer: about three quarters
    explain: Every client whose hash mod 4 differs from its hash mod 3 moves.
    ```

    ```expect
    say: Each backend served two of the six.
    check:
      - routed.b1 == 2
    ```

    ```compare
    label: Round robin vs least connections      # optional
    left: {algorithm: round-robin}               # each side's balancer settings
    right: {algorithm: least-connections}
    seed: 7                                      # optional: the traffic's seed
    traffic: true                                # optional: resume the traffic after
    ```

    ```expect
    say: Least connections keeps the slow tail off most requests.
    when: right.completed >= 300
    check:
      - right.p95 < left.p95 / 3
    ```

A `predict` whose choices are backend names asks which backend the balancer
picks for the first request of its `run`. One whose choices are `{say, when}`
asks about a number: after its `run` (done `repeat` times, waiting for every
answer between turns), it waits as an `expect` does (for its own `when:` claim
if it has one, else for every answer, up to `wait_s`), then the answer is the
choice whose claim holds. The claims are the `expect` language, worked out by
the same code (lab.lessons.claims, lab.lessons.measure); exactly one must hold.

A `compare` block is a button that opens a comparison (lab.web.compare): the
lab as it is on the left, a second balancer with its own backends, alike, on
the right, both on the same traffic. Checks read either side with `left.` or
`right.` in front of any measurement.

`run` holds the same `command`s the page sends (lab.web.commands checks them).
Everything is data; nothing in a directive is ever rendered as HTML. This
module holds what the blocks become; lab.lessons.directive_parser reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lab.lessons.claims import Claim, ClaimError

KINDS = ("do", "predict", "expect", "compare")
DEFAULT_WAIT_S = 15.0
SEND_ONE = {"action": "send", "count": 1}
# Steps that zero the counters, so a new counting window begins after them.
WINDOW_STARTS = ("reset", "reset_lesson", "compare")


@dataclass(frozen=True)
class Do:
    """A button: run these commands, `repeat` times, each time after every answer is in.

    With `wait` false the next directive does not wait for the answers either, so
    a slow request can still be in flight when the next question is asked. With
    `refused`, the button shows something the lab will not do: one of its steps
    must be refused with an error that says these words (the steps after it, like
    the page's, do not run).
    """

    label: str
    steps: tuple[dict, ...]
    repeat: int = 1
    wait: bool = True
    refused: str | None = None
    kind: str = "do"

    def public(self) -> dict:
        data: dict[str, Any] = {
            "kind": self.kind,
            "label": self.label,
            "run": list(self.steps),
            "repeat": self.repeat,
        }
        if self.refused is not None:
            data["refused"] = self.refused
        return data


@dataclass(frozen=True)
class Predict:
    """A question whose answer is the backend the balancer really picks next, or (with
    `judges`, one claim per choice) the choice whose claim the lab's numbers bear out."""

    question: str
    choices: tuple[str, ...]
    answer: str | None = None  # checked by the test suite, never sent to the page
    steps: tuple[dict, ...] = (SEND_ONE,)
    explain: str = ""
    judges: tuple[Claim, ...] = ()  # empty: the choices are backend names
    repeat: int = 1
    when: Claim | None = None  # judged questions: wait for this first (default: every answer)
    wait_s: float = DEFAULT_WAIT_S
    kind: str = "predict"

    def public(self) -> dict:
        data: dict[str, Any] = {
            "kind": self.kind,
            "question": self.question,
            "choices": list(self.choices),
            "run": list(self.steps),
            "explain": self.explain,
        }
        if self.judges:
            data.update(judged=True, repeat=self.repeat, wait_s=self.wait_s)
        return data

    def judge(self, metrics: Mapping[str, float]) -> dict:
        """The outcome on these numbers: {"answer": the choice whose claim holds (None if
        not exactly one does), "reason": the numbers and the claim, "measured": the numbers}."""
        names = list(dict.fromkeys(n for claim in self.judges for n in claim.names))
        measured = {name: metrics.get(name) for name in names}
        shown = ", ".join(f"{name} = {_number(value)}" for name, value in measured.items())
        held = []
        for choice, claim in zip(self.choices, self.judges, strict=True):
            try:
                if claim.holds(metrics):
                    held.append((choice, claim))
            except ClaimError as exc:
                return {"answer": None, "reason": f"{claim.text} cannot be worked out: {exc}",
                        "measured": measured}  # fmt: skip
        if len(held) != 1:
            which = "none" if not held else "more than one"
            reason = f"{shown}, and {which} of the answers fits"
            return {"answer": None, "reason": reason, "measured": measured}
        choice, claim = held[0]
        return {"answer": choice, "reason": f"{shown} ({claim.text})", "measured": measured}


@dataclass(frozen=True)
class Expect:
    """What the experiment so far must show, in words and in checks on real numbers."""

    say: str
    checks: tuple[Claim, ...] = ()
    routes: tuple[str, ...] | None = None  # the backends of the route events, in order
    when: Claim | None = None  # wait for this first (default: every answer is in)
    wait_s: float = DEFAULT_WAIT_S
    kind: str = "expect"

    def public(self) -> dict:
        data: dict[str, Any] = {
            "kind": self.kind,
            "say": self.say,
            "check": [c.text for c in self.checks],
        }
        if self.routes is not None:
            data["routes"] = list(self.routes)
        return data


Directive = Do | Predict | Expect


def _number(value: float | None) -> str:
    return "none" if value is None else f"{round(value, 3):g}"
