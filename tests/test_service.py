"""One lab, many screens: a real `lb-lab serve` and a real `lb-lab web --lab` on its service.

Both pages are driven as a browser drives them (Socket.IO over Engine.IO
long-polling, spoken by hand); the service's own API is read directly too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from conftest import EventReader, Http, RawSocketIO, split, wait_for

LAB = ["--paused", "--backends", "2", "--balancer-port", "0", "--backend-port", "0"]


def launched(*args: str, until: str) -> tuple[subprocess.Popen, str]:
    """Start `lb-lab ARGS` and read its output up to the line containing `until`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    output = ""
    for line in process.stdout:
        output += line
        if until in line:
            return process, output
    process.wait()
    raise AssertionError(f"lb-lab {' '.join(args)} ended before {until!r}:\n{output}")


@pytest.fixture(scope="module")
def fronts():
    """(first page, second page, the service's address): serve, then web --lab on its service."""
    serve, output = launched("serve", "--port", "0", *LAB, until="Press Ctrl-C")
    second = None
    try:
        page = re.search(r"Load Balancing Lab: http://(\S+)/", output).group(1)
        service = re.search(r"service: +http://(\S+)/", output).group(1)
        second, more = launched(
            "web", "--lab", f"http://{service}/", "--port", "0", until="Press Ctrl-C"
        )
        other = re.search(r"Load Balancing Lab: http://(\S+)/", more).group(1)
        assert f"showing the lab at http://{service}/" in more
        yield page, other, service
    finally:
        for process in (second, serve):
            if process is not None:
                process.terminate()
                process.wait(10)


@pytest.fixture
def browsers(fronts):
    first, second = RawSocketIO(fronts[0]), RawSocketIO(fronts[1])
    yield first, second
    first.close()
    second.close()


def routes(client: RawSocketIO) -> list[str]:
    return [e["id"] for b in client.received("batch") for e in b["events"] if e["type"] == "route"]


def test_a_page_that_connects_gets_the_whole_lab_at_once(browsers):
    for client in browsers:
        state = client.wait_for_event("state", lambda s: True)
        assert [b["name"] for b in state["backends"]] == ["b1", "b2"]
        assert client.received("state")[0] is client.events[0][1]  # before any batch


def test_both_pages_see_the_same_batches(browsers):
    first, second = browsers
    sent = first.wait_for_event("state", lambda s: True)["counters"]["traffic"]["sent"]
    assert first.ask(1, '["command",{"action":"send","count":4}]') == [{"ok": True}]

    def done(batch: dict) -> bool:
        traffic = batch["counters"]["traffic"]
        return traffic["completed"] == sent + 4 and batch["counters"]["active"] == 0

    seen = [client.wait_for_event("batch", done) for client in browsers]
    # The same batch, read once by the service, reached both pages: the same reading.
    assert seen[0]["counters"]["read"] == seen[1]["counters"]["read"]
    assert seen[0]["counters"] == seen[1]["counters"]
    later = seen[0]["counters"]["read"]
    for client in browsers:  # each page has every batch up to that one
        client.wait_for_event("batch", lambda b: b["counters"]["read"] > later)
    new = [rid for rid in routes(first) if rid in set(routes(second))]
    assert len(new) >= 4 and routes(first)[-4:] == routes(second)[-4:]


def test_a_command_from_either_page_changes_both(browsers):
    first, second = browsers
    assert second.ask(1, '["command",{"action":"set_weight","name":"b1","weight":3}]') == [
        {"ok": True}
    ]
    for client in browsers:
        client.wait_for_event("state", lambda s: s["backends"][0]["weight"] == 3)
    assert first.ask(2, '["command",{"action":"set_algorithm","algorithm":"random"}]') == [
        {"ok": True}
    ]
    for client in browsers:
        client.wait_for_event("state", lambda s: s["algorithm"] == "random")
    assert first.ask(3, '["command",{"action":"set_weight","name":"b1","weight":1}]')[0]["ok"]
    assert second.ask(2, '["command",{"action":"set_algorithm","algorithm":"round-robin"}]')[0][
        "ok"
    ]


def command(api: Http, body: bytes) -> tuple[int, dict]:
    """POST /command as a web front sends it."""
    status, _, answer = api.request(
        "POST", "/command", body=body, headers={"Content-Type": "application/json"}
    )
    return status, json.loads(answer)


def test_the_service_answers_commands_and_says_who_runs_the_lab(fronts):
    _, _, service = fronts
    api = Http(service)
    try:
        status, answer = command(api, b'{"action": "explode"}')
        assert status == 200 and answer["ok"] is False
        assert answer["error"].startswith("unknown action 'explode'")
        status, answer = command(api, b'{"action": "pause"}')
        assert (status, answer) == (200, {"ok": True})
        status, body = command(api, b"{not json")
        assert status == 400 and body["field"] == "body"
        status, lab = api.json("GET", "/lab")
    finally:
        api.close()
    assert status == 200 and lab["api"] == service
    assert [b["name"] for b in lab["backends"]] == ["b1", "b2"]
    assert {c["name"] for c in lab["children"]} == {"b1", "b2", "balancer", "traffic"}
    with open(f"/proc/{lab['pid']}/cmdline") as cmdline:
        assert cmdline.read().split("\0")[2:4] == ["lab", "service"]


@pytest.mark.parametrize(
    "headers, status, words",
    [
        ({"Origin": "http://127.0.0.1:5000"}, 403, "no requests from web pages"),
        ({"Host": "evil.example:5000"}, 403, "answers only to 127.0.0.1"),
        ({"Content-Type": "text/plain"}, 415, "application/json"),
    ],
    ids=["a web page", "a rebound name", "a simple form post"],
)
def test_the_service_refuses_what_a_web_page_could_send(fronts, headers, status, words):
    """A page in a browser can POST text/plain anywhere without asking; the service says no."""
    page, _, service = fronts
    browser = RawSocketIO(page)
    before = browser.wait_for_event("state", lambda s: True)["traffic"]["paused"]
    api = Http(service)
    body = json.dumps({"action": "resume" if before else "pause"})
    try:
        sent = {"Content-Type": "application/json"} | headers
        answer_status, _, answer = api.request("POST", "/command", body=body, headers=sent)
        assert (answer_status, words in json.loads(answer)["error"]) == (status, True)
        state = Http(service).json("GET", "/state")[1]
    finally:
        api.close()
        browser.close()
    assert state["traffic"]["paused"] == before  # nothing changed


def test_the_stream_starts_with_a_full_state(fronts):
    _, _, service = fronts
    import socket

    with socket.create_connection(split(service), timeout=5) as sock:
        sock.sendall(f"GET /stream HTTP/1.1\r\nHost: {service}\r\n\r\n".encode())
        data = b""
        while data.count(b"\n") < 8:  # the head, then a few lines
            data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"200 OK" in head and b"application/x-ndjson" in head
    first = json.loads(body.split(b"\n")[0])
    assert first["name"] == "state" and first["data"]["backends"][0]["name"] == "b1"


def test_the_service_imports_no_web_framework():
    found = subprocess.run(
        [sys.executable, "-c", "import sys, lab.service.daemon; "
         "print(sorted({m.split('.')[0] for m in sys.modules} & "
         "{'flask', 'flask_socketio', 'socketio', 'engineio', 'eventlet'}))"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert found.stdout.strip() == "[]", found.stderr


def test_resetting_a_lesson_is_one_balancer_update(fronts, browsers):
    first, _ = browsers
    admin = Http(fronts[2]).json("GET", "/lab")[1]["addresses"]["admin"]
    events = EventReader(admin)
    try:
        assert first.ask(1, '["command",{"action":"open_lesson","slug":"round-robin"}]')[0]["ok"]
        wait_for(lambda: events.of("config"), what="the lesson's config")
        before = len(events.of("config"))
        assert first.ask(2, '["command",{"action":"reset_lesson","slug":"round-robin"}]')[0]["ok"]
        # A change after the reset marks its end in the balancer's own stream.
        assert first.ask(3, '["command",{"action":"set_algorithm","algorithm":"random"}]')[0]["ok"]
        events.wait("config", changes={"algorithm": "random"})
    finally:
        events.close()
    configs = events.of("config")[before:]
    assert len(configs) == 2, configs  # the reset's one update, then the marker


def test_a_command_that_fails_part_way_tells_every_page_what_it_did_change(fronts, browsers):
    """Opening a lesson starts b3, turns b1's latency and the balancer, then meets a backend
    that does not answer: the command fails, and both pages are shown the lab as it now is."""
    first, second = browsers
    status, lab = Http(fronts[2]).json("GET", "/lab")
    stuck = next(c["pid"] for c in lab["children"] if c["name"] == "b2")
    os.kill(stuck, signal.SIGSTOP)  # alive, but answers nothing: its counter reset times out
    try:
        [answer] = first.ask(1, '["command",{"action":"open_lesson","slug":"least-connections"}]')
    finally:
        os.kill(stuck, signal.SIGCONT)
    assert answer["ok"] is False and "b2 did not answer" in answer["error"]
    for client in browsers:
        state = client.wait_for_event("state", lambda s: s["algorithm"] == "least-connections")
        assert [b["name"] for b in state["backends"]] == ["b1", "b2", "b3"]
        assert state["backends"][0]["latency_ms"] == 1000
