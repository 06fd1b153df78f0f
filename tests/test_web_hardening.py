"""The web lab under misuse: odd packets, a balancer that stops answering, strangers on the network.

Against a real lab (real backends, balancer and traffic generator as child
processes), driven through Flask-SocketIO's test client.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from conftest import Http, wait_for

from lab.web.app import create_app, socketio
from lab.web.controller import LabController, LabSettings


@pytest.fixture(scope="module")
def lab():
    controller = LabController(
        LabSettings(balancer_port=0, first_backend_port=0, paused=True, rate=5, seed=3)
    )
    controller.start()
    app = create_app({"TESTING": True, "ASYNC_MODE": "threading", "CONTROLLER": controller})
    yield app, controller
    controller.close()


def paused(controller: LabController) -> bool:
    return Http(controller.addresses["traffic"]).json("GET", "/state")[1]["paused"]


# -- every shape of `command` packet is answered ---------------------------------------------


@pytest.mark.parametrize(
    "args",
    [(), ({"action": "pause"}, 1), ({"action": "pause"}, {"action": "resume"}), (None, None, None)],
    ids=["no argument", "an extra number", "two commands", "three nulls"],
)
def test_a_command_with_zero_or_several_arguments_is_answered(lab, args):
    app, controller = lab
    client = socketio.test_client(app)
    answer = client.emit("command", *args, callback=True)
    client.disconnect()
    assert answer["ok"] is False
    assert "exactly one" in answer["error"]


def test_a_single_argument_command_still_works(lab):
    app, controller = lab
    client = socketio.test_client(app)
    assert client.emit("command", {"action": "resume"}, callback=True) == {"ok": True}
    assert not paused(controller)
    assert client.emit("command", {"action": "pause"}, callback=True) == {"ok": True}
    client.disconnect()
    assert paused(controller)


def test_an_unexpected_failure_is_answered_and_logged(lab, monkeypatch, caplog):
    app, controller = lab
    client = socketio.test_client(app)

    def broken(**_):
        raise KeyError("surprise")

    monkeypatch.setattr(controller, "_pause", broken)
    answer = client.emit("command", {"action": "pause"}, callback=True)
    monkeypatch.undo()
    assert answer["ok"] is False and "pause failed" in answer["error"]
    assert any("surprise" in record.getMessage() or record.exc_info for record in caplog.records)
    assert client.emit("command", {"action": "pause"}, callback=True) == {"ok": True}
    client.disconnect()


# -- a slow balancer holds up only the commands that need it -----------------------------------


def test_a_stopped_balancer_does_not_hold_up_a_command_for_the_traffic(lab):
    app, controller = lab
    first, second = socketio.test_client(app), socketio.test_client(app)
    balancer = controller.supervisor.children["balancer"].pid
    answers: dict[str, dict] = {}
    os.kill(balancer, signal.SIGSTOP)  # really slow: it answers nothing until SIGCONT
    try:
        waiting = threading.Thread(
            target=lambda: answers.update(
                first=first.emit(
                    "command",
                    {"action": "configure", "settings": {"max_queue": 7}},
                    callback=True,
                )
            )
        )
        waiting.start()
        wait_for(lambda: "balancer" in controller.turns.held(), what="the first command to start")
        started = time.monotonic()
        answers["second"] = second.emit("command", {"action": "resume"}, callback=True)
        took = time.monotonic() - started
        assert "first" not in answers  # the first is still waiting on the balancer
    finally:
        os.kill(balancer, signal.SIGCONT)
    waiting.join(10)
    assert answers["second"] == {"ok": True}
    assert took < 1.0, f"resume waited {took:.2f} s behind the balancer"
    assert not paused(controller)
    # The balancer answers once it runs again: the change was made, and everyone hears
    # of both changes.
    assert answers["first"] == {"ok": True}
    assert controller.balancer.get("/state")["settings"]["max_queue"] == 7
    states = [m["args"][0] for m in second.get_received() if m["name"] == "state"]
    assert states and states[-1]["traffic"]["paused"] is False
    assert second.emit("command", {"action": "pause"}, callback=True) == {"ok": True}
    first.disconnect()
    second.disconnect()


def test_commands_for_the_same_process_take_turns(lab):
    app, controller = lab
    turns = controller.turns
    with turns.take(["balancer"]):
        assert turns.held() == {"balancer"}
        done = threading.Event()
        other = threading.Thread(
            target=lambda: (controller.run("set_algorithm", algorithm="random"), done.set())
        )
        other.start()
        assert not done.wait(0.3)  # it waits for the balancer's turn
    other.join(5)
    assert done.is_set()
    assert controller.balancer.get("/state")["algorithm"] == "random"
    assert controller.run("set_algorithm", algorithm="round-robin") == {"ok": True}


@pytest.mark.xfail(
    strict=True, reason="needs the balancer's number checks (issue 12, section 1, balancer side)"
)
def test_a_value_the_balancer_refuses_comes_back_in_its_own_words_at_once(lab):
    app, controller = lab
    client = socketio.test_client(app)
    started = time.monotonic()
    answer = client.emit(
        "command", {"action": "configure", "settings": {"max_queue": "²"}}, callback=True
    )
    client.disconnect()
    assert time.monotonic() - started < 1.0
    assert answer["ok"] is False and "max_queue" in answer["error"]
