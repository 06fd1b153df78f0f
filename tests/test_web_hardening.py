"""The web lab under misuse: odd packets, a balancer that stops answering, strangers on the network.

Against a real lab (real backends, balancer and traffic generator as child
processes), driven through Flask-SocketIO's test client.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import Http, RawSocketIO, wait_for

from lab.web.api import ApiError, JsonApi
from lab.web.app import create_app, socketio
from lab.web.commands import COMMANDS
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

    def broken(lab, **_):
        raise KeyError("surprise")

    monkeypatch.setitem(COMMANDS, "pause", dataclasses.replace(COMMANDS["pause"], run=broken))
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
    print(f"resume acknowledged in {took * 1000:.0f} ms while the configure waited")
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


# -- the same through `lb-lab serve` (eventlet) and raw Socket.IO packets ------------------------


@pytest.fixture(scope="module")
def served():
    """`lb-lab serve` as a learner starts it; yields (page address, the lab's output, pids)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", "serve", "--port", "0", "--backends", "2", "--paused",
         "--balancer-port", "0", "--backend-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = ""
    for line in process.stdout:
        output += line
        if "Press Ctrl-C" in line:
            break
    page = re.search(r"Load Balancing Lab: http://(\S+)/", output).group(1)
    try:
        yield page, output, process
    finally:
        process.terminate()
        process.wait(10)


def child_pid(parent: int, role: str) -> int:
    """The lab process with this role under `parent` (serve -> its lab service -> the lab)."""
    family = {parent}
    for _ in range(3):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
                    with open(f"/proc/{entry}/cmdline") as cmdline:
                        args = cmdline.read().split("\0")
                except OSError:
                    continue
                if ppid in family:
                    if role in args:
                        return int(entry)
                    family.add(int(entry))
    raise AssertionError(f"no {role} child")


def unread_bytes(port: int) -> int:
    """The most bytes waiting unread on any connection to this loopback port (Linux)."""
    most = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, queues = fields[1], fields[4]
            if int(local.split(":")[1], 16) == port:
                most = max(most, int(queues.split(":")[1], 16))
    return most


@pytest.mark.parametrize(
    "payload, words",
    [
        ('["command"]', "exactly one"),
        ('["command",{"action":"pause"},1]', "exactly one"),
        ('["command",null,null,null]', "exactly one"),
        ('["command",{"action":"pause"}', "not valid JSON"),
        ('["command",' + "[" * 5000 + "]" * 5000 + "]", "nests too deep"),
        ('{"action":"pause"}', "starts with its name"),
        ('"command"', "starts with its name"),
        ("[]", "starts with its name"),
        ("[null]", "starts with its name"),
        ("", "starts with its name"),
        ('["comand",{"action":"pause"}]', "unknown event 'comand'"),
    ],
    ids=[
        "none",
        "two",
        "three",
        "cut short",
        "deep",
        "object",
        "text",
        "empty",
        "null",
        "no data",
        "misspelt",
    ],  # fmt: skip
)
def test_every_raw_command_packet_is_answered(served, payload, words):
    page, _, _ = served
    client = RawSocketIO(page)
    try:
        [answer] = client.ask(1, payload)
        assert answer["ok"] is False and words in answer["error"]
        assert client.ask(2, '["command",{"action":"pause"}]') == [{"ok": True}]
    finally:
        client.close()


def test_in_the_served_lab_a_stopped_balancer_does_not_hold_up_the_traffic(served):
    page, output, process = served
    traffic = re.search(r"control (\S+)", output).group(1)
    admin = int(re.search(r"admin \S+:(\d+)\)", output).group(1))
    balancer = child_pid(process.pid, "balancer")
    first, second = RawSocketIO(page), RawSocketIO(page)
    answers: dict[str, list] = {}
    configure = '["command",{"action":"configure","settings":{"max_queue":9}}]'
    os.kill(balancer, signal.SIGSTOP)
    try:
        waiting = threading.Thread(target=lambda: answers.update(first=first.ask(1, configure)))
        waiting.start()
        # The PUT /config (over 100 bytes; a GET /state is under 80) lies unread in the
        # stopped balancer's socket: the first command is waiting on the balancer.
        wait_for(lambda: unread_bytes(admin) > 100, what="the configure to reach the balancer")
        started = time.monotonic()
        answers["second"] = second.ask(1, '["command",{"action":"resume"}]')
        took = time.monotonic() - started
        assert "first" not in answers
    finally:
        os.kill(balancer, signal.SIGCONT)
    waiting.join(15)
    first.close()
    second.close()
    assert answers["second"] == [{"ok": True}]
    assert took < 1.0, f"resume waited {took:.2f} s behind the balancer"
    print(f"resume acknowledged in {took * 1000:.0f} ms while the configure waited")
    assert Http(traffic).json("GET", "/state")[1]["paused"] is False
    assert answers["first"] == [{"ok": True}]


def test_a_process_that_never_answers_is_reported_as_such_not_as_a_refusal():
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does), never answers
    address = f"127.0.0.1:{silent.getsockname()[1]}"
    try:
        with pytest.raises(ApiError) as change:
            JsonApi(address, "the balancer", timeout=0.3).call("PUT", "/config", {"x": 1})
        with pytest.raises(ApiError) as reading:
            JsonApi(address, "the balancer", timeout=0.3).get("/state")
    finally:
        silent.close()
    assert str(change.value) == (
        "the balancer did not answer within 0.3 s (it may be stuck), "
        "so the change may or may not have been made"
    )
    assert str(reading.value) == "the balancer did not answer within 0.3 s (it may be stuck)"


def test_random_raw_command_packets_are_each_answered(served):
    """150 seeded mutations of real command packets, sent as bytes on the wire."""
    page, _, process = served
    rng = random.Random(21)
    good = [
        '["command",{"action":"set_weight","name":"b1","weight":2}]',
        '["command",{"action":"send","count":1}]',
        '["command",{"action":"configure","settings":{"sticky":{"mode":"off"}}}]',
    ]
    client = RawSocketIO(page)
    try:
        for number in range(1, 151):
            body = rng.choice(good)
            for _ in range(rng.randint(1, 4)):
                cut = rng.randrange(len(body) + 1)
                roll = rng.random()
                if roll < 0.4:
                    body = body[:cut]  # cut short
                elif roll < 0.8:
                    body = body[:cut] + rng.choice('[]{}",:\\ nulltrue0.5e9-ÿ²') + body[cut:]
                else:
                    body = body[:cut] + body[cut + rng.randint(1, 5) :]  # a piece missing
            # A digit or "-" right after the id would be read as part of the packet's header
            # (a longer id, or a count of binary attachments): not a command packet any more.
            if body[:1].isdigit() or body[:1] == "-":
                body = " " + body
            [answer] = client.ask(number, body)
            assert set(answer) <= {"ok", "error"} and isinstance(answer["ok"], bool), body
        assert client.ask(999, '["command",{"action":"pause"}]') == [{"ok": True}]
    finally:
        client.close()
    assert process.poll() is None
