"""Lesson directives without a lab: the do, predict, expect and compare blocks read in order,
judged questions judge by their claims, and a bad block is refused naming what is wrong.

What the blocks become is lab.lessons.directives; reading them is
lab.lessons.directive_parser. Lessons themselves (the course, front matter,
the catalog) are tested in test_lessons.py.
"""

from __future__ import annotations

import textwrap

import pytest

from lab.lessons.catalog import parse_lesson
from lab.lessons.directives import Do, Expect, Predict
from lab.lessons.errors import LessonError


def lesson_text(settings: str = "", body: str = "Some text.\n") -> str:
    front = "title: T\norder: 1\nsummary: S\n" + settings
    return f"---\n{front}---\n{body}"


def directives(body: str):
    return parse_lesson(lesson_text(body=textwrap.dedent(body)), "here").directives


def test_directives_are_read_in_order():
    do, predict, expect = directives(
        """\
        ```do
        label: Kill b2
        run: {action: kill_backend, name: b2}
        ```

        ```predict
        question: Which next?
        choices: [b1, b3]
        answer: b3
        ```

        ```expect
        say: b2 got nothing.
        check: [routed.b2 == 0, "0.1 <= moved <= 0.4"]
        routes: [b1, b3]
        ```
        """
    )
    assert isinstance(do, Do) and do.steps == ({"action": "kill_backend", "name": "b2"},)
    assert isinstance(predict, Predict) and predict.steps == ({"action": "send", "count": 1},)
    assert predict.answer == "b3" and "answer" not in predict.public()
    assert isinstance(expect, Expect) and [c.text for c in expect.checks] == [
        "routed.b2 == 0",
        "0.1 <= moved <= 0.4",
    ]
    assert expect.routes == ("b1", "b3")


def test_a_prediction_about_a_number_judges_each_choice_by_its_claim():
    (predict,) = directives(
        """\
        ```predict
        question: What share of the clients move?
        run:
          - {action: add_backend}
          - {action: reset}
          - {action: send, count: 32}
        repeat: 2
        wait_s: 20
        choices:
          - {say: about a quarter, when: moved < 0.375}
          - {say: about half, when: 0.375 <= moved < 0.625}
          - {say: 75, when: moved >= 0.625}
        answer: 75
        explain: mod 4 and mod 3 agree for one hash in four.
        ```
        """
    )
    assert predict.choices == ("about a quarter", "about half", "75")  # a number reads as text
    assert [j.text for j in predict.judges] == [
        "moved < 0.375",
        "0.375 <= moved < 0.625",
        "moved >= 0.625",
    ]
    assert predict.repeat == 2 and predict.wait_s == 20.0 and predict.when is None
    public = predict.public()
    assert public["judged"] is True and public["choices"] == list(predict.choices)
    assert "answer" not in public and "moved" not in str(public)  # the page is not told
    assert predict.judge({"moved": 0.6875}) == {
        "answer": "75",
        "reason": "moved = 0.688 (moved >= 0.625)",
        "measured": {"moved": 0.6875},
    }
    assert predict.judge({"moved": 0.25})["answer"] == "about a quarter"
    missing = predict.judge({})  # no clients seen twice: no share to judge
    assert missing["answer"] is None and "no measurement called 'moved'" in missing["reason"]


def test_a_prediction_whose_bands_overlap_or_leave_a_gap_judges_nothing():
    (predict,) = directives(
        """\
        ```predict
        question: How busy is the busiest?
        run: {action: send, count: 60}
        choices:
          - {say: about 10, when: routed.max <= 12}
          - {say: about 15, when: 12 <= routed.max <= 17}
        ```
        """
    )
    assert predict.judge({"routed.max": 12})["reason"] == (
        "routed.max = 12, and more than one of the answers fits"
    )
    assert predict.judge({"routed.max": 30})["answer"] is None


def test_a_button_may_show_what_the_lab_refuses():
    (do,) = directives(
        """\
        ```do
        label: Try Layer 4
        run: {action: set_mode, mode: tcp}
        refused: "  routing rules need Layer 7 "
        ```
        """
    )
    assert do.refused == "routing rules need Layer 7"
    assert do.public()["refused"] == "routing rules need Layer 7"
    assert (
        "refused" not in directives("```do\nlabel: Pause\nrun: {action: pause}\n```\n")[0].public()
    )


def test_a_lesson_may_start_itself_over_and_names_follow_added_backends():
    (do,) = directives(
        """\
        ```do
        label: Grow
        run:
          - {action: add_backend}
          - {action: set_weight, name: b4, weight: 2}
          - {action: reset_lesson}
        ```
        """
    )
    assert do.steps[-1] == {"action": "reset_lesson", "slug": "here"}


JUDGED = (  # a good question judged by claims, which the bad ones below change
    "```predict\nquestion: Q\nchoices: [{say: a, when: moved < 1}, {say: b, when: moved > 1}]\n"
    "```\n"
)
BAD_DIRECTIVES = [
    ("```do\nlabel: [\n```\n", "not valid YAML"),
    ("```do\n- 1\n```\n", "holds a mapping"),
    ("```do\nrun: {action: send, count: 1}\n```\n", "needs label"),
    ("```do\nlabel: X\n```\n", "run must be a command"),
    ("```do\nlabel: X\nrun: {action: explode}\n```\n", "unknown action 'explode'"),
    ("```do\nlabel: X\nrun: {action: send, count: 0}\n```\n", "count must be 1 to 1000"),
    ("```do\nlabel: X\nrun: {action: kill_backend, name: b9}\n```\n", "no backend 'b9'"),
    ("```do\nlabel: X\nrun: {action: open_lesson, slug: other}\n```\n", "cannot open_lesson"),
    ("```do\nlabel: X\nrun: {action: reset_lesson, slug: other}\n```\n", "reset only itself"),
    ("```do\nlabel: X\nrun: {action: pause}\nrepeat: 0\n```\n", "repeat must be 1 to 50"),
    ("```do\nlabel: X\nrun: {action: pause}\ncolour: red\n```\n", "unexpected 'colour'"),
    ("```do\nlabel: X\nrun: {action: pause}\nrefused: [no]\n```\n", "refused must be words"),
    ("```do\nlabel: X\nrun: {action: pause}\nrefused: nope\nrepeat: 2\n```\n", "cannot repeat"),
    ("```do\nlabel: X\nrun: {action: configure, settings: 3}\n```\n", "settings"),
    ("```predict\nquestion: Q\nchoices: [b1]\n```\n", "at least two"),
    ("```predict\nquestion: Q\nchoices: [b1, b7]\n```\n", "'b7' is not a backend"),
    ("```predict\nquestion: Q\nchoices: [b1, b2]\nanswer: b3\n```\n", "not one of the choices"),
    ("```predict\nquestion: Q\nchoices: [b1, b2]\nrepeat: 2\n```\n", "repeat is for questions"),
    ("```predict\nquestion: Q\nchoices: [{say: a, when: moved < 1}]\n```\n", "at least two"),
    ("```predict\nquestion: Q\nchoices: [b1, {say: a, when: moved < 1}]\n```\n", "choices[0]"),
    (
        "```predict\nquestion: Q\nchoices: [{say: a, when: x < 1}, {say: b, when: x > 1}]\n```\n",
        "'x', which is not a measurement",
    ),
    ("```expect\nsay: S\ncheck: [p99 > before.before.p99]\n```\n", "not a measurement"),
    ("```expect\nsay: S\ncheck: [p99 > before.speed]\n```\n", "not a measurement"),
    (
        "```predict\nquestion: Q\nchoices: [{say: a, when: moved < 1}, {say: b}]\n```\n",
        "choices[1] ('b') needs when",
    ),
    (
        "```predict\nquestion: Q\nchoices: [{say: a, when: moved}, {say: b, when: moved}]\n```\n",
        "compares nothing",
    ),
    (
        "```predict\nquestion: Q\nchoices: [{when: moved < 1}, {say: b, when: moved > 1}]\n```\n",
        "choices[0] needs say",
    ),
    (
        JUDGED.replace("moved < 1}", "moved < 1, if: 1}"),
        "unexpected 'if'",
    ),
    (
        JUDGED.replace("say: b", "say: a"),
        "say the same",
    ),
    (
        JUDGED.replace("```\n", "answer: c\n```\n"),
        "'c' is not one of the choices (a, b)",
    ),
    (
        JUDGED.replace("```\n", "wait_s: 0\n```\n"),
        "wait_s must be",
    ),
    (
        JUDGED.replace("```\n", "run: {action: kill_backend, name: b9}\n```\n"),
        "no backend 'b9'",
    ),
    ("```expect\nsay: S\n```\n", "needs check or routes"),
    ("```expect\nsay: S\ncheck: [luck > 1]\n```\n", "'luck', which is not a measurement"),
    ("```expect\nsay: S\ncheck: [routed.b1]\n```\n", "compares nothing"),
    ("```expect\nsay: S\ncheck: [routed.b1 == 2]\nwait_s: 600\n```\n", "wait_s must be"),
    ("```expect\ncheck: [routed == 2]\n```\n", "needs say"),
]


@pytest.mark.parametrize("body, words", BAD_DIRECTIVES, ids=[w for _, w in BAD_DIRECTIVES])
def test_bad_directives_are_refused_with_the_line(body, words):
    with pytest.raises(LessonError) as caught:
        parse_lesson(lesson_text(body="Intro.\n\n" + body), "here")
    assert words in str(caught.value)
    assert "line 8" in str(caught.value)  # front matter: lines 1-5; "Intro." 6; the fence 8


def test_a_check_may_read_the_last_windows_numbers():
    (expect,) = directives("```expect\nsay: S\ncheck: [p99 > 5 * before.p99]\n```\n")
    assert expect.checks[0].names == ["p99", "before.p99"]
