"""Every lesson's experiment, carried out for real: a lesson whose claim is false fails here.

One lab (real backends, balancer and traffic generator) serves the whole
module. Each test opens its lesson through the page's own `command` event
(a Socket.IO test client), presses every button, answers every prediction with
the balancer's real decision and checks every `expect` against the numbers the
processes report (lab.lessons.runner).
"""

from __future__ import annotations

import pytest

from lab.lessons.catalog import Catalog
from lab.lessons.directives import Do
from lab.lessons.errors import LessonRunError
from lab.lessons.runner import Runner
from lab.web.app import create_app, socketio
from lab.web.controller import LabController, LabSettings

LESSONS = Catalog().lessons()


@pytest.fixture(scope="module")
def runner():
    controller = LabController(
        LabSettings(balancer_port=0, first_backend_port=0, paused=True, rate=5, seed=7)
    )
    controller.start()
    app = create_app({"TESTING": True, "ASYNC_MODE": "threading", "CONTROLLER": controller})
    page = socketio.test_client(app)

    def command(data: dict) -> dict:
        return page.emit("command", data, callback=True)

    runner = Runner(controller, command)
    yield runner
    runner.close()
    page.disconnect()
    controller.close()


def test_the_course_has_lessons():
    assert len(LESSONS) >= 10
    assert not Catalog().errors


@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.slug for lesson in LESSONS])
def test_every_claim_of_the_lesson_holds_in_a_real_lab(runner, lesson):
    run = runner.run(lesson)
    print(run.report())
    assert run.outcomes, "the lesson did nothing"
    assert run.ok, run.report()
    checked = [o for o in run.outcomes if o.kind == "expect"]
    assert len(checked) == sum(1 for d in lesson.directives if d.kind == "expect")


def states(runner) -> dict:
    """The lab as a browser's `state` shows it."""
    return runner.controller.snapshot()


def test_opening_a_lesson_switches_the_whole_lab(runner):
    assert runner.command({"action": "open_lesson", "slug": "power-of-two-choices"}) == {"ok": True}
    state = states(runner)
    assert state["lesson"] == {"slug": "power-of-two-choices", "title": "Power of two choices"}
    assert [(b["name"], b["state"], b["latency_ms"]) for b in state["backends"]] == [
        (f"b{n}", "up", 1000.0) for n in range(1, 7)
    ]
    assert (state["algorithm"], state["traffic"]["clients"], state["traffic"]["paused"]) == (
        "random",
        12,
        True,
    )
    assert "balance random(1)" in state["config_snippets"]["haproxy"]
    extra = runner.controller.supervisor.children["b6"]

    assert runner.command({"action": "open_lesson", "slug": "weighted-round-robin"})["ok"]
    state = states(runner)
    assert [(b["name"], b["weight"], b["latency_ms"]) for b in state["backends"]] == [
        ("b1", 5, 0.0),
        ("b2", 1, 0.0),
        ("b3", 1, 0.0),
    ]
    assert extra.process.poll() is not None  # b4-b6 are gone, processes and all
    assert "server 127.0.0.1:" in state["config_snippets"]["nginx"]
    assert "weight=5;  # b1" in state["config_snippets"]["nginx"]


def test_the_snippets_show_the_running_lessons_checks_pools_and_rules(runner):
    assert runner.command({"action": "open_lesson", "slug": "routing-rules"})["ok"]
    shown = states(runner)["config_snippets"]
    assert "upstream lab_api {\n    least_conn;" in shown["nginx"]
    assert "proxy_pass http://$lab_pool;" in shown["nginx"]
    assert "    use_backend lab_canary if tester\n" in shown["haproxy"]
    assert "check inter 1s rise 2 fall 2" in shown["haproxy"]  # the lab's own health checks
    assert runner.command({"action": "open_lesson", "slug": "sticky-sessions"})["ok"]
    shown = states(runner)["config_snippets"]
    assert "cookie SERVERID insert indirect nocache" in shown["haproxy"]
    assert "check inter 200ms rise 2 fall 2" in shown["haproxy"]
    assert "    sticky cookie SERVERID;  # nginx 1.29.6+\n" in shown["nginx"]


def test_reset_lesson_puts_the_lessons_settings_back(runner):
    run = runner.command
    assert run({"action": "open_lesson", "slug": "weighted-round-robin"})["ok"]
    for change in (
        {"action": "set_weight", "name": "b1", "weight": 1},
        {"action": "set_algorithm", "algorithm": "least-connections"},
        {"action": "set_mode", "mode": "tcp"},
        {"action": "kill_backend", "name": "b2"},
        {"action": "set_latency", "name": "b3", "latency_ms": 250},
        {"action": "add_backend"},
        {"action": "set_traffic", "clients": 9},
        {"action": "send", "count": 3},
    ):
        assert run(change)["ok"], change
    assert run({"action": "reset_lesson", "slug": "weighted-round-robin"}) == {"ok": True}
    state = states(runner)
    assert [(b["name"], b["state"], b["weight"], b["latency_ms"]) for b in state["backends"]] == [
        ("b1", "up", 5, 0.0),
        ("b2", "up", 1, 0.0),
        ("b3", "up", 1, 0.0),
    ]
    assert (state["algorithm"], state["mode"], state["traffic"]["clients"]) == (
        "round-robin",
        "http",
        4,
    )
    assert state["counters"]["total"] == 0


def test_an_unknown_lesson_is_refused_and_changes_nothing(runner):
    assert runner.command({"action": "open_lesson", "slug": "round-robin"})["ok"]
    before = states(runner)["backends"]
    answer = runner.command({"action": "open_lesson", "slug": "juggling"})
    assert answer["ok"] is False and "no lesson 'juggling'" in answer["error"]
    assert states(runner)["backends"] == before
    assert runner.command({"action": "reset_lesson"})["error"] == "reset_lesson needs slug"


def test_a_button_the_lab_should_refuse_fails_the_lesson_when_it_does_not(runner):
    assert runner.command({"action": "open_lesson", "slug": "round-robin"})["ok"]
    unknown = ({"action": "set_weight", "name": "b9", "weight": 2},)
    assert runner.press(Do("Weigh b9", unknown, refused="no backend named 'b9'"))[0]
    ok, detail = runner.press(Do("Weigh b9", unknown, refused="needs Layer 7"))
    assert not ok and "not saying 'needs Layer 7'" in detail
    ok, detail = runner.press(Do("Pause", ({"action": "pause"},), refused="anything"))
    assert not ok and "should have been refused" in detail


def test_counting_afresh_while_traffic_runs_is_an_error_in_the_lesson(runner):
    assert runner.command({"action": "open_lesson", "slug": "round-robin"})["ok"]
    assert runner.command({"action": "resume"})["ok"]
    try:
        with pytest.raises(LessonRunError, match="pause the traffic first"):
            runner.press(Do("Count afresh", ({"action": "reset"},)))
    finally:
        assert runner.command({"action": "pause"})["ok"]


def test_a_check_may_compare_with_the_window_before_the_last_reset(runner):
    assert runner.command({"action": "open_lesson", "slug": "round-robin"})["ok"]
    runner.press(Do("Send 6", ({"action": "send", "count": 6},)))
    runner.press(Do("Count afresh, send 3", ({"action": "reset"}, {"action": "send", "count": 3})))
    numbers = runner.settle(None, 10)
    assert (numbers["routed"], numbers["before.routed"]) == (3, 6)
    assert numbers["before.completed"] == 6 and numbers["completed"] == 3
    assert "before.before.routed" not in numbers
