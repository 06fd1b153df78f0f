"""A web process of several (lab.web.scaleout), unit-tested with Flask-SocketIO's test client."""

from __future__ import annotations

import json

from socketio import packet

from lab.web.access import Access
from lab.web.app import create_app, socketio
from lab.web.packets import LenientPacket

POLL = "/socket.io/?EIO=4&transport=polling"
REMOTE = "192.0.2.7"  # a browser on another machine (TEST-NET-1)
BEYOND = Access.beyond_loopback("0.0.0.0", False, interfaces={"192.0.2.2"}, names={"teacher"})


class Relay:
    """Stands where the lab's link stands: hands the app its publish function, and no state."""

    lessons = None  # no lesson pages in these tests

    def __init__(self) -> None:
        self.publish = None

    def attach(self, publish, start_task, sleep) -> None:
        self.publish = publish

    def describe(self) -> None:
        return None

    def classroom(self, data: dict) -> dict:  # the viewer count each front reports
        return {"ok": True}


def app_with(config: dict):
    return create_app({"TESTING": True, "ASYNC_MODE": "threading", **config})


def browser(app, peer: str = "127.0.0.1", forwarded: str | None = None):
    http = app.test_client()
    http.environ_base["REMOTE_ADDR"] = peer
    headers = {"X-Forwarded-For": forwarded} if forwarded else None
    return socketio.test_client(app, flask_test_client=http, headers=headers)


def test_a_batch_to_many_browsers_is_encoded_once(monkeypatch):
    relay = Relay()
    app = app_with({"CONTROLLER": relay})
    browsers = [browser(app) for _ in range(5)]
    encoded: list[object] = []
    original = LenientPacket.encode

    def counting(self, *args, **kwargs):
        if self.packet_type == packet.EVENT:
            encoded.append(self.data[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LenientPacket, "encode", counting)
    relay.publish("batch", {"events": [{"type": "route", "id": "r1"}], "omitted": 0})
    for one in browsers:
        # (`you`, this page's role, came on connect, before the count started)
        assert [m["name"] for m in one.get_received() if m["name"] != "you"] == ["batch"]
        one.disconnect()
    assert encoded == ["batch"]  # once for five browsers, not once per browser


def command_over_polling(app, forwarded: str) -> dict:
    """One command the way a browser behind the balancer sends it: Engine.IO long polling
    through the whole WSGI stack (the test client's Socket.IO shortcut skips the middleware)."""
    http = app.test_client()
    http.environ_base["REMOTE_ADDR"] = "127.0.0.1"  # the lab's balancer, on loopback
    headers = {"X-Forwarded-For": forwarded}
    opened = http.get(POLL, headers=headers).get_data(as_text=True)
    sid = json.loads(opened[1:])["sid"]
    session = f"{POLL}&sid={sid}"
    assert http.post(session, data="40", headers=headers).status_code == 200
    http.get(session, headers=headers)  # the namespace's connect answer
    event = '421["command",{"action":"pause"}]'
    assert http.post(session, data=event, headers=headers).status_code == 200
    for _ in range(10):
        for message in http.get(session, headers=headers).get_data(as_text=True).split("\x1e"):
            if message.startswith("431"):
                return json.loads(message[3:])[0]
    raise AssertionError("no acknowledgement")


def test_behind_the_lab_balancer_a_remote_browser_may_still_only_watch():
    # Every request reaches a web worker from the balancer, on loopback; the browser's
    # own address is the last one in X-Forwarded-For, which the balancer appends.
    app = app_with({"ACCESS": BEYOND, "BEHIND_BALANCER": True})
    answer = command_over_polling(app, REMOTE)
    assert answer["ok"] is False and "only from the machine it runs on" in answer["error"]
    answer = command_over_polling(app, "127.0.0.1")
    assert answer == {"ok": False, "error": "this lab has no controller"}  # it was let through


def test_a_forged_forwarded_address_does_not_make_a_remote_browser_local():
    # A browser may send its own X-Forwarded-For; the balancer appends the real address.
    app = app_with({"ACCESS": BEYOND, "BEHIND_BALANCER": True})
    answer = command_over_polling(app, f"127.0.0.1, {REMOTE}")
    assert answer["ok"] is False and "only from the machine it runs on" in answer["error"]
