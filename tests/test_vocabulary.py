"""Every event the balancer sends matches its declaration in lab.vocabulary.

Traffic runs through every feature (rules and pools, sticky cookies, health
checks, passive health and retries, the max_conns queue, draining, a bad
request, Layer 4), and every line of the real /events stream is checked.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from conftest import Http, raw_exchange, split, wait_for
from jsonschema import Draft202012Validator
from test_events import FakeSink

from lab.balancer import events
from lab.balancer.events import EventBus
from lab.vocabulary.events import BY_NAME, DATAGRAM, DROPPED, KINDS

VALIDATORS = {kind.name: Draft202012Validator(kind.schema()) for kind in KINDS}
FAST_CHECKS = {"enabled": True, "interval_ms": 100, "timeout_ms": 80, "rise": 1, "fall": 1}


def problems(event: dict) -> list[str]:
    """What is wrong with an event, as its declaration sees it."""
    validator = VALIDATORS.get(event.get("type"))
    if validator is None:
        return [f"undeclared event kind {event.get('type')!r}"]
    return [f"{event['type']}: {error.message}" for error in validator.iter_errors(event)]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_declaration_is_a_valid_json_schema(kind):
    Draft202012Validator.check_schema(kind.schema())
    assert kind.meaning and all(f.get("description") for f in kind.fields.values())


def test_a_declaration_refuses_an_undeclared_field_and_a_wrong_type():
    done = {"type": "done", "id": "r1", "t": 1.5, "backend": "b1", "status": 200, "ms": 1.2,
            "bytes": 10, "bytes_up": 0}  # fmt: skip
    assert problems(done) == []
    assert problems(done | {"colour": "red"}) != []
    assert problems(done | {"status": "200"}) != []
    assert problems({k: v for k, v in done.items() if k != "ms"}) != []
    assert problems({"type": "teleport"}) == ["undeclared event kind 'teleport'"]


def get(address: str, path: str, headers=None) -> int:
    client = Http(address, timeout=10)
    try:
        return client.get(path, headers=headers)[0]
    finally:
        client.close()


def test_every_feature_sends_only_declared_events(lab):
    lab.knobs("b3", latency_ms=300)
    lab.start_balancer()
    reader = lab.events()
    lab.configure(
        backends=[
            {"name": "b1", "address": lab.backends["b1"]},
            {"name": "b2", "address": lab.backends["b2"]},
            {"name": "b3", "address": lab.backends["b3"], "max_conns": 1},
        ],
        pools=[{"name": "slow", "backends": ["b3"]}],
        rules=[{"name": "slow", "path_prefix": "/slow", "pool": "slow"}],
        sticky={"mode": "cookie"},
        retries={"tries": 3},
    )
    client = Http(lab.listen)
    client.get("/")  # route (sticky: sets the cookie), done
    client.get("/", headers={"Cookie": "SERVERID=b1"})  # route with sticky
    client.close()
    slow = [threading.Thread(target=get, args=(lab.listen, "/slow")) for _ in range(2)]
    for thread in slow:
        thread.start()  # the second waits for b3's one slot: a queue event
    reader.wait("queue")
    for thread in slow:
        thread.join(10)
    lab.admin("PUT", "/backends/b2", {"draining": True})
    lab.admin("PUT", "/backends/b2", {"draining": False})
    raw_exchange(lab.listen, b"GET / HTTP/1.1\r\nHost: lab\r\nContent-Length: x\r\n\r\n")  # 400
    lab.configure(health=FAST_CHECKS)
    reader.wait("check")
    lab.kill("b1")
    assert get(lab.listen, "/", headers={"Cookie": "SERVERID=b1"}) == 200  # retried elsewhere
    reader.wait("health", healthy=False)
    lab.configure(mode="tcp", sticky={"mode": "off"}, rules=[], pools=[])
    assert get(lab.listen, "/") == 200  # a Layer 4 connection
    wait_for(lambda: reader.of("done", status=None), what="a Layer 4 done event")

    seen = list(reader.events)
    assert [p for event in seen for p in problems(event)] == []
    assert {e["type"] for e in seen} == set(BY_NAME) - {DROPPED, DATAGRAM}  # UDP: below
    routes = reader.of("route")
    for field in ("sticky", "pool", "rule", "retry", "method"):
        assert any(field in route for route in routes), f"no route event showed {field}"
    assert any(route["mode"] == "tcp" for route in routes)


def test_udp_flows_send_only_declared_events(lab):
    lab.start_balancer("--mode", "udp", "--udp-idle-timeout-ms", "200", "--udp-max-flows", "2")
    reader = lab.events()
    lab.configure(health=FAST_CHECKS)
    target = split(lab.listen)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for sock in socks:
            sock.settimeout(2)
            sock.sendto(b"hello", target)  # the third evicts the first
            sock.recvfrom(1000)
        wait_for(lambda: reader.of("done", end="idle"), what="a flow ending idle")
        lab.configure(udp={"per_datagram": True})
        socks[0].sendto(b"again", target)
        socks[0].recvfrom(1000)
        wait_for(lambda: reader.of("done", end="answered"), what="an answered exchange")
    finally:
        for sock in socks:
            sock.close()
    seen = list(reader.events)
    assert [p for event in seen for p in problems(event)] == []
    assert {e["end"] for e in reader.of("done")} >= {"evicted", "idle", "answered"}
    assert {e["way"] for e in reader.of("datagram")} == {"up", "down"}
    assert all(e["ms"] > 0 for e in reader.of("datagram", way="down"))
    assert all(route["mode"] == "udp" for route in reader.of("route"))


def test_the_dropped_report_matches_its_declaration():
    async def scenario():
        bus = EventBus(limit=2)
        stuck = FakeSink(buffered=events.WRITE_BUFFER_LIMIT + 1)
        bus.subscribe(stuck)
        for n in range(5):
            bus.publish({"type": "check", "t": 1.0, "backend": "b1", "ok": True, "ms": n,
                         "detail": "connected"})  # fmt: skip
            bus.flush()
        stuck.buffered = 0
        bus.flush()
        return stuck.lines()

    lines = asyncio.new_event_loop().run_until_complete(scenario())
    assert lines[-1]["type"] == DROPPED
    assert [p for line in lines for p in problems(line)] == []


def test_the_page_gets_only_declared_states_batches_and_acknowledgements():
    from lab.vocabulary import messages
    from lab.web.app import create_app, socketio
    from lab.web.controller import LabController, LabSettings

    check = {
        name: Draft202012Validator(getattr(messages, name)())
        for name in ("state", "batch", "acknowledgement")
    }
    controller = LabController(
        LabSettings(balancer_port=0, first_backend_port=0, paused=True, seed=3)
    )
    controller.start()
    try:
        app = create_app({"TESTING": True, "ASYNC_MODE": "threading", "CONTROLLER": controller})
        client = socketio.test_client(app)
        acks = [
            client.emit("command", {"action": "send", "count": 5}, callback=True),
            client.emit("command", {"action": "set_weight", "name": "b9"}, callback=True),
        ]
        seen: list[dict] = []

        def received(name: str) -> list[dict]:
            seen.extend(client.get_received())
            return [m["args"][0] for m in seen if m["name"] == name]

        def counted(batches: list[dict]) -> int:
            return max((b["counters"]["total"] for b in batches), default=0)

        wait_for(lambda: counted(received("batch")) >= 5, timeout=10, what="five routed")
        acks.append(client.emit("command", {"action": "kill_backend", "name": "b2"}, callback=True))
        wait_for(
            lambda: any(b["state"] == "killed" for s in received("state") for b in s["backends"]),
            what="a state with b2 killed",
        )
        client.disconnect()
    finally:
        controller.close()
    assert [a["ok"] for a in acks] == [True, False, True]
    mistakes = [
        f"{message['name']}: {'/'.join(map(str, e.path))}: {e.message}"
        for message in seen
        if message["name"] in check
        for e in check[message["name"]].iter_errors(message["args"][0])
    ]
    mistakes += [f"ack: {e.message}" for a in acks for e in check["acknowledgement"].iter_errors(a)]
    assert mistakes == []
    events = [e for m in seen if m["name"] == "batch" for e in m["args"][0]["events"]]
    assert [p for event in events for p in problems(event)] == []


def test_the_readme_contract_section_is_the_declared_vocabulary():
    from pathlib import Path

    from lab.vocabulary.document import markdown
    from lab.vocabulary.readme import contract_block

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert contract_block(readme) == markdown(), (
        "README.md's contract section is out of date: run `lb-lab schema --update-readme README.md`"
    )


def test_lb_lab_schema_prints_a_valid_json_schema_document(capsys):
    import json

    from lab.cli import main

    assert main(["schema"]) == 0
    document = json.loads(capsys.readouterr().out)
    Draft202012Validator.check_schema(document)
    assert set(document["$defs"]["events"]) == set(BY_NAME)
    assert "send" in document["$defs"]["commands"]
