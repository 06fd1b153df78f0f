"""Hundreds of random `command`s against a real lab: every one is answered, and the lab lives on.

Seeded, so a failure replays exactly (the seed and the payload are in the
message). The payloads are what a careless or hostile client sends: wrong
types, unknown actions, missing and extra fields, huge and nested values,
NaN and Infinity, unknown backends, and zero or several arguments. The
balancer's own settings are fuzzed through its admin API elsewhere; here
`configure` gets the shapes the web lab itself must refuse or pass on.
"""

from __future__ import annotations

import math
import random
import time

import pytest
from conftest import wait_for

from lab.web.app import create_app, socketio
from lab.web.commands import COMMANDS
from lab.web.controller import LabController, LabSettings

SEED = 12
COUNT = 500
BUDGET_S = 30.0

WEIRD = [
    None, True, False, 0, -1, 1, 3, 2**63, -(10**30), 0.5, -0.0, 1e308,
    math.inf, -math.inf, math.nan, "", " ", "b1", "b2", "b9", "B1", "b1 ", "²", "1e400",
    "<script>alert(1)</script>", "x" * 100_000, "\u0000", "🙂", [], {}, [1, 2], {"a": 1},
    list(range(10_000)),
]  # fmt: skip
UNKNOWN_ACTIONS = ["", "explode", "SET_WEIGHT", "set-weight", "__class__", "_reset", "handle"]


def nested(rng: random.Random, depth: int):
    value = rng.choice(WEIRD[:20])
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {rng.choice(["a", "health", "x"]): value}
    return value


def value(rng: random.Random):
    """Anything a JSON client can send, and a few things only Python's JSON can (NaN)."""
    roll = rng.random()
    if roll < 0.15:
        return nested(rng, rng.randint(2, 40))
    if roll < 0.25:
        return rng.uniform(-1e6, 1e6)
    if roll < 0.35:
        return rng.randint(-(2**40), 2**40)
    return rng.choice(WEIRD)


def settings(rng: random.Random):
    """What `configure` may be sent: some the web lab refuses, some go to the balancer."""
    return rng.choice(
        [
            lambda: value(rng),
            lambda: {"backends": []},
            lambda: {"mode": "udp"},
            lambda: {"max_queue": rng.choice([math.nan, math.inf, -math.inf])},
            lambda: {"health": nested(rng, rng.randint(8, 30))},
            lambda: {rng.choice(["nonsense", "x", ""]): value(rng)},
            lambda: {"sticky": {"mode": rng.choice(["off", "cookie", "moon", 3, None])}},
            lambda: {"algorithm": rng.choice(["random", "fastest", 7, None])},
        ]
    )()


def command(rng: random.Random):
    """One random command payload, usually a dict that is wrong in one or more ways."""
    roll = rng.random()
    if roll < 0.08:
        return value(rng)  # not an object at all
    action = rng.choice(list(COMMANDS) * 3 + UNKNOWN_ACTIONS + [None, 7, ["pause"]])
    data: dict = {} if rng.random() < 0.05 else {"action": action}
    spec = COMMANDS[action].fields if isinstance(action, str) and action in COMMANDS else {}
    for name in spec:
        if rng.random() < 0.8:
            data[name] = settings(rng) if name == "settings" else value(rng)
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        data[rng.choice(["why", "name", "count", "__proto__", "action2", "x" * 1000])] = value(rng)
    return data


@pytest.fixture(scope="module")
def lab():
    controller = LabController(
        LabSettings(balancer_port=0, first_backend_port=0, paused=True, rate=5, seed=5)
    )
    controller.start()
    app = create_app({"TESTING": True, "ASYNC_MODE": "threading", "CONTROLLER": controller})
    yield app, controller
    controller.close()


def test_hundreds_of_random_commands_are_each_answered_and_the_lab_lives_on(lab):
    app, controller = lab
    rng = random.Random(SEED)
    client = socketio.test_client(app)
    started = time.monotonic()
    refused = 0
    for number in range(COUNT):
        extra = rng.random()
        payload = command(rng)
        args = (payload,) if extra < 0.9 else (() if extra < 0.95 else (payload, value(rng)))
        answer = client.emit("command", *args, callback=True)
        where = f"seed {SEED}, command {number}: {str(args)[:300]}"
        assert isinstance(answer, dict) and set(answer) <= {"ok", "error"}, where
        assert isinstance(answer["ok"], bool), where
        if not answer["ok"]:
            refused += 1
            assert isinstance(answer["error"], str) and answer["error"].strip(), where
        client.get_received()  # keep the queue of states short
    took = time.monotonic() - started
    assert took < BUDGET_S, f"{COUNT} commands took {took:.1f} s"
    assert refused > COUNT // 2  # the fuzz was mostly bad input, as meant

    # The lab lives on: no process it needs has gone, and a plain command works.
    assert controller.problem == ""
    for name in ("balancer", "traffic"):
        assert controller.supervisor.children[name].alive()
    assert client.emit("command", {"action": "set_algorithm", "algorithm": "round-robin"},
                       callback=True) == {"ok": True}  # fmt: skip
    sent = controller.counters()["traffic"]["sent"]
    assert client.emit("command", {"action": "send", "count": 2}, callback=True) == {"ok": True}
    wait_for(lambda: controller.counters()["traffic"]["sent"] >= sent + 2, what="the sends")
    client.disconnect()
    print(f"{COUNT} random commands in {took:.1f} s, {refused} refused")
