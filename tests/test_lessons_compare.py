"""A lesson's `compare` block, and checks that read either side of a comparison."""

from __future__ import annotations

import textwrap

import pytest

from lab.lessons.catalog import parse_lesson
from lab.lessons.directives import Do, Expect
from lab.lessons.errors import LessonError
from lab.lessons.measure import known, measure


def lesson(body: str):
    text = f"---\ntitle: T\norder: 1\nsummary: S\n---\nIntro.\n\n{textwrap.dedent(body)}"
    return parse_lesson(text, "here")


def test_a_compare_block_is_a_button_that_opens_a_comparison_on_quiet_traffic():
    button, claim = lesson(
        """\
        ```compare
        left: {algorithm: round-robin}
        right: {algorithm: least-connections, health: {enabled: false}}
        seed: 7
        ```

        ```expect
        say: The right side's tail is shorter.
        when: right.completed >= 100
        check: [right.p95 < left.p95 / 3, left.sent == right.sent]
        ```
        """
    ).directives
    assert isinstance(button, Do) and isinstance(claim, Expect)
    assert button.label == "Compare them side by side"
    assert button.steps == (
        {"action": "pause"},
        {
            "action": "compare",
            "left": {"algorithm": "round-robin"},
            "right": {"algorithm": "least-connections", "health": {"enabled": False}},
            "seed": 7,
        },
        {"action": "resume"},
    )
    assert button.wait is False  # the traffic runs on: the expect waits for its `when`
    assert button.public()["kind"] == "do"  # the page shows it as any button
    assert claim.checks[0].names == ["right.p95", "left.p95"]


def test_without_traffic_the_comparison_opens_paused_and_the_button_waits():
    (button,) = lesson(
        "```compare\nlabel: Side by side\nright: {algorithm: random}\ntraffic: false\n```\n"
    ).directives
    assert [step["action"] for step in button.steps] == ["pause", "compare"]
    assert button.wait is True and button.label == "Side by side"


@pytest.mark.parametrize(
    "body, words",
    [
        ("```compare\nleft: {algorithm: random}\n```\n", "needs right"),
        ("```compare\nright: {algorithm: random}\ncolour: red\n```\n", "unexpected 'colour'"),
        ("```compare\nright: {algorithm: random}\ntraffic: yes please\n```\n", "traffic must be"),
        ("```compare\nright: round-robin\n```\n", "right must be an object"),
        ("```compare\nright: {algorithm: random}\nseed: -1\n```\n", "seed must be"),
        ("```expect\nsay: S\ncheck: [middle.p95 < 3]\n```\n", "'middle.p95', which is not"),
        ("```expect\nsay: S\ncheck: [right.luck < 3]\n```\n", "'right.luck', which is not"),
    ],
)
def test_bad_compare_blocks_and_side_names_are_refused(body, words):
    with pytest.raises(LessonError) as caught:
        lesson(body)
    assert words in str(caught.value)


def test_either_side_of_any_measurement_is_a_name_a_check_may_use():
    for name in ("left.p95", "right.p95", "right.routed.b1", "left.clients_split", "p99"):
        assert known(name), name
    for name in ("right.", "right.nothing", "up.p95"):
        assert not known(name), name


def test_the_distribution_gives_p50_p95_p99_and_the_slowest_answer():
    balancer = {"backends": [], "pools": [], "rules": []}
    traffic = {
        "counters": {"sent": 3, "completed": 3, "failed": 0, "in_flight": 0,
                     "status": {"2xx": 3}},
        "latency_ms": {"p50": 2.0, "p95": 9.0},
        "distribution": {"n": 3, "p50": 2.0, "p95": 9.0, "p99": 9.0, "max": 9.1, "cdf": []},
    }  # fmt: skip
    metrics = measure(balancer, traffic, {}, [[]])
    assert (metrics["p50"], metrics["p95"], metrics["p99"], metrics["max_ms"]) == (2, 9, 9, 9.1)
    del traffic["distribution"]
    assert "p95" not in measure(balancer, traffic, {}, [[]])
