"""Two balancers in front of the same backends (a lesson's `balancers: 2`), with real processes.

The right balancer fronts the left's own backend processes and the traffic
generator shares the clients out between the two balancers. Each balancer
knows only what it sent, so under least connections both send a small burst
to the same idle backends: the herd the many-balancers lesson shows.
"""

from __future__ import annotations

import pytest
from conftest import wait_for

from lab.lessons.catalog import Catalog
from lab.lessons.settings import parse_setup
from lab.web import compare
from lab.web.controller import LabController, LabSettings


@pytest.fixture
def lab():
    controller = LabController(
        LabSettings(backends=4, balancer_port=0, first_backend_port=0, paused=True, seed=3)
    )
    controller.start()
    yield controller
    controller.close()


def routed(side) -> dict[str, int]:
    return {b["name"]: b["total"] for b in side.balancer_api().get("/state")["backends"]}


def served(lab) -> dict[str, int]:
    answers = {}
    for name, record in lab.backends.items():
        answers[name] = lab.backend_api(record).get("/_lab/state")["counters"]["served"]
    return answers


def test_two_balancers_share_the_backends_and_split_the_clients(lab):
    for name in lab.backends:
        assert lab.run("set_latency", name=name, latency_ms=600) == {"ok": True}
    children = set(lab.supervisor.children)
    compare.start(lab, same_backends=True)
    right = lab.right
    assert set(right.supervisor.children) == {"balancer"}  # no backend processes of its own
    assert set(lab.supervisor.children) == children  # the left's restarted traffic, no more
    state = lab.snapshot()
    ours = [(b["name"], b["address"]) for b in state["backends"]]
    assert [(b["name"], b["address"]) for b in state["compare"]["right"]["backends"]] == ours

    for side in ("left", "right"):
        answer = lab.run("set_algorithm", algorithm="least-connections", side=side)
        assert answer == {"ok": True}
    assert lab.run("reset") == {"ok": True}
    assert lab.run("send", count=4) == {"ok": True}  # c1, c3 to the left; c2, c4 to the right
    wait_for(lambda: sum(served(lab).values()) == 4, what="four answers")
    # Each balancer sent its two to the two backends it saw idle first: the same two.
    assert routed(lab) == routed(right) == {"b1": 1, "b2": 1, "b3": 0, "b4": 0}
    assert served(lab) == {"b1": 2, "b2": 2, "b3": 0, "b4": 0}


def test_a_backend_command_acts_once_and_both_balancers_follow(lab):
    compare.start(lab, same_backends=True)
    assert lab.run("add_backend") == {"ok": True}
    assert lab.run("set_weight", name="b5", weight=3) == {"ok": True}
    left = lab.balancer_api().get("/state")["backends"]
    right = lab.right.balancer_api().get("/state")["backends"]
    shown = [(b["name"], b["weight"]) for b in left]
    assert shown[-1] == ("b5", 3) and [(b["name"], b["weight"]) for b in right] == shown
    assert "b5" not in lab.right.supervisor.children  # one b5 process: the left's
    assert lab.run("remove_backend", name="b5") == {"ok": True}
    assert [b["name"] for b in lab.right.balancer_api().get("/state")["backends"]] == [
        "b1", "b2", "b3", "b4"
    ]  # fmt: skip

    compare.stop(lab)  # the second balancer goes; the backends stay
    assert set(lab.backends) == {"b1", "b2", "b3", "b4"}
    assert all(lab.supervisor.children[name].alive() for name in lab.backends)


def test_a_lesson_with_two_balancers_opens_them_and_the_next_lesson_closes_them(lab):
    lesson = Catalog().get("many-balancers")
    assert lesson.setup.balancers == 2 and parse_setup({}).balancers == 1
    assert lab.run("open_lesson", slug="many-balancers") == {"ok": True}
    assert lab.right is not None and lab.right.same_backends
    assert lab.right.settings.seed == 4  # its own dice: the left's seed is 3
    assert lab.run("open_lesson", slug="round-robin") == {"ok": True}
    assert lab.right is None
