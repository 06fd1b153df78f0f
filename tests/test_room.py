"""The classroom as lab state (lab.web.room), with a clock the test moves."""

from __future__ import annotations

from lab.web.audience import Audience
from lab.web.room import STALE_S, Room


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_viewer_counts_once_and_a_change_of_mind_moves_the_vote():
    room = Room(Clock())
    question = room.open_round("round-robin", 0, "Which backend?", ("b1", "b2", "b3"))
    vote = {"kind": "answer", "round": question.id, "option": "b2", "viewer": "alice-123"}
    assert room.take(vote) == {"ok": True}
    for _ in range(3):
        room.answer(question.id, "b2", "bob-45678")
    room.answer(question.id, "b3", "alice-123")  # alice changes her mind
    public = room.public()["round"]
    assert public["tally"] == {"b1": 0, "b2": 1, "b3": 1}
    assert public["answers"] == 2
    assert "alice-123" not in str(room.public())  # anonymous: counts, never who


def test_bad_answers_are_refused_with_a_reason_and_change_nothing():
    room = Room(Clock())
    question = room.open_round("round-robin", 0, "Which backend?", ("b1", "b2"))
    cases = [
        ({"kind": "answer", "round": question.id, "option": "b9", "viewer": "v-1234567"}, "one of"),
        ({"kind": "answer", "round": question.id + 1, "option": "b1", "viewer": "v-1234567"},
         "not open"),
        ({"kind": "answer", "round": True, "option": "b1", "viewer": "v-1234567"}, "not open"),
        ({"kind": "answer", "round": question.id, "option": "b1", "viewer": "x"}, "viewer"),
        ({"kind": "answer", "round": question.id, "option": "b1", "viewer": "<script>1234"},
         "viewer"),
        ({"kind": "vote"}, "unknown kind"),
        ("b1", "expected"),
    ]  # fmt: skip
    for data, why in cases:
        answer = room.take(data)
        assert answer["ok"] is False and why in answer["error"], (data, answer)
    assert room.public()["round"]["answers"] == 0
    room.reveal({"answer": "b1", "reason": "its turn"})
    late = room.take(
        {"kind": "answer", "round": question.id, "option": "b1", "viewer": "v-1234567"}
    )
    assert late["ok"] is False and "revealed" in late["error"]


def test_viewer_counts_from_several_fronts_add_up_and_a_silent_front_stops_counting():
    clock = Clock()
    room = Room(clock)
    room.report("front-a", 3)
    room.report("front-b", 4)
    assert room.public()["viewers"] == 7
    assert room.take_dirty()
    clock.now += STALE_S / 2
    room.report("front-a", 2)  # front b is silent from now on
    assert room.public()["viewers"] == 6
    clock.now += STALE_S * 0.75
    assert room.public()["viewers"] == 2
    assert room.take_dirty()  # its going is a change the pages must hear about
    assert not room.take_dirty()
    refused = room.take({"kind": "viewers", "front": "front-a", "count": -1})
    assert refused["ok"] is False and room.public()["viewers"] == 2


def test_traffic_holds_pause_once_and_resume_only_what_ran_before():
    room = Room(Clock())
    assert room.hold("step", running=True) is True  # first hold: pause now
    assert room.hold("round", running=False) is False  # already held
    assert room.release("step") is False  # the round still holds it
    assert room.public()["holds"] == ["round"]
    assert room.release("round") is True  # it ran before the holds: resume
    assert room.hold("round", running=False) is False  # paused by hand before: stays
    assert room.release("round") is False


def test_a_reveal_takes_the_first_route_after_it_asked():
    room = Room(Clock())
    room.saw({"type": "route", "backend": "b1", "reason": "before"})  # not wanted yet
    room.want_route()
    room.saw({"type": "done", "backend": "b3"})
    room.saw({"type": "route", "backend": "b2", "reason": "its turn"})
    room.saw({"type": "route", "backend": "b3", "reason": "later"})
    assert room.next_route(0.1) == {"type": "route", "backend": "b2", "reason": "its turn"}
    room.want_route()
    assert room.next_route(0.01) is None


def test_a_front_reports_changes_soon_and_is_refreshed_while_quiet():
    clock = Clock()
    audience = Audience("front-a", clock)
    audience.joined("sid1", viewer=True)
    audience.joined("sid2", viewer=False)  # the presenter is no viewer
    assert audience.due() == {"kind": "viewers", "front": "front-a", "count": 1}
    assert audience.due() is None
    clock.now += 2.5
    assert audience.due() == {"kind": "viewers", "front": "front-a", "count": 1}
    audience.left("sid1")
    assert audience.due()["count"] == 0


def test_one_connection_answers_as_one_viewer():
    audience = Audience("front-a")
    assert audience.may_vote_as("sid1", "viewer-aaaa")
    assert audience.may_vote_as("sid1", "viewer-aaaa")
    assert not audience.may_vote_as("sid1", "viewer-bbbb")  # stuffing the tally
    assert audience.may_vote_as("sid2", "viewer-bbbb")
