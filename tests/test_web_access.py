"""Who may reach the web lab and who may command it, on loopback and beyond.

Host checks go through the whole WSGI app (Flask's test client); commands go
through Socket.IO's test client, as a browser on this machine or on another.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import Http

from lab.web.access import Access
from lab.web.app import create_app, socketio
from lab.web.controller import LabController, LabSettings


@pytest.fixture(scope="module")
def lab():
    controller = LabController(
        LabSettings(balancer_port=0, first_backend_port=0, paused=True, rate=5, seed=3)
    )
    controller.start()
    yield controller
    controller.close()


def app_for(controller: LabController, access: Access | None = None):
    """The web app over this lab, as `lb-lab serve` builds it for that bind.

    The controller is handed over as `go_live` does, without attaching it again:
    one relay per lab.
    """
    config = {"TESTING": True, "ASYNC_MODE": "threading"}
    app = create_app(config | ({"ACCESS": access} if access else {}))
    app.config["CONTROLLER"] = controller
    return app


def paused(controller: LabController) -> bool:
    return Http(controller.addresses["traffic"]).json("GET", "/state")[1]["paused"]


# -- beyond loopback -----------------------------------------------------------------------------

POLL = "/socket.io/?EIO=4&transport=polling"
MACHINE = Access.beyond_loopback(
    "0.0.0.0",
    remote_control=False,
    interfaces={"192.0.2.2", "fd00::2", "fe80::fc:ff:fe00:1"},
    names={"teacher-laptop", "teacher-laptop.local"},
)


def http_client(app, peer: str = "127.0.0.1"):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = peer
    return client


@pytest.fixture
def open_app(lab):
    """The lab's app as `lb-lab serve --host 0.0.0.0` serves it."""
    return app_for(lab, MACHINE)


@pytest.mark.parametrize(
    "host",
    ["192.0.2.2:5000", "[fd00::2]:5000", "[FE80::FC:FF:FE00:1]", "teacher-laptop.local:5000",
     "TEACHER-LAPTOP", "localhost:5000", "127.0.0.1:5000", "[::1]:5000"],
)  # fmt: skip
def test_beyond_loopback_the_machine_answers_to_its_own_names(open_app, host):
    http = http_client(open_app, "192.0.2.9")
    assert http.get("/", headers={"Host": host}).status_code == 200
    same = {"Host": host, "Origin": f"http://{host}"}
    assert http.get(POLL, headers=same).status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:5000", "192.0.2.3", "teacher-laptop.evil.example", ""]
)
def test_beyond_loopback_a_rebound_name_is_still_refused(open_app, host):
    http = http_client(open_app, "192.0.2.9")
    rebound = {"Host": host, "Origin": f"http://{host}"}
    assert http.get(POLL, headers=rebound).status_code == 421
    assert http.get("/", headers={"Host": host}).status_code == 421


def test_beyond_loopback_other_machines_watch_but_may_not_command(open_app, lab):
    controller = lab
    student = socketio.test_client(open_app, flask_test_client=http_client(open_app, "192.0.2.9"))
    assert any(m["name"] == "state" for m in student.get_received())  # it sees the lab
    answer = student.emit("command", {"action": "resume"}, callback=True)
    assert answer["ok"] is False
    assert "--allow-remote-control" in answer["error"]
    assert paused(controller)  # nothing changed
    student.disconnect()
    teacher = socketio.test_client(open_app, flask_test_client=http_client(open_app, "127.0.0.1"))
    assert teacher.emit("command", {"action": "resume"}, callback=True) == {"ok": True}
    assert teacher.emit("command", {"action": "pause"}, callback=True) == {"ok": True}
    teacher.disconnect()


def test_with_remote_control_allowed_other_machines_may_command(lab):
    controller = lab
    access = Access.beyond_loopback("192.0.2.2", remote_control=True, interfaces=set(), names=set())
    app = app_for(controller, access)
    assert http_client(app).get("/", headers={"Host": "192.0.2.2"}).status_code == 200
    assert http_client(app).get("/", headers={"Host": "evil.example"}).status_code == 421
    student = socketio.test_client(app, flask_test_client=http_client(app, "192.0.2.9"))
    assert student.emit("command", {"action": "resume"}, callback=True) == {"ok": True}
    assert student.emit("command", {"action": "pause"}, callback=True) == {"ok": True}
    student.disconnect()


def test_on_loopback_everything_is_as_before(lab):
    controller = lab
    app = app_for(controller)  # the default: loopback names only, every browser may command
    http = http_client(app)
    assert http.get("/", headers={"Host": "127.0.0.1:5000"}).status_code == 200
    assert http.get("/", headers={"Host": "192.0.2.2"}).status_code == 421
    client = socketio.test_client(app, flask_test_client=http)
    assert client.emit("command", {"action": "pause"}, callback=True) == {"ok": True}
    client.disconnect()


def test_the_lab_says_who_else_can_reach_it():
    assert Access.for_bind("127.0.0.1", remote_control=True).notice() == ""
    watched = Access.beyond_loopback("0.0.0.0", False, interfaces=set(), names=set()).notice()
    assert "only this machine can command" in watched and "--allow-remote-control" in watched
    ruled = Access.beyond_loopback("0.0.0.0", True, interfaces=set(), names=set()).notice()
    assert ruled.startswith("WARNING") and "anyone" in ruled


def test_a_loopback_bind_is_any_loopback_address():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert not Access.for_bind(host, remote_control=False).beyond
    assert Access.for_bind("127.0.0.2", False).host_allowed("127.0.0.2:5000")


def test_serve_offers_the_remote_control_flag():
    shown = subprocess.run(
        [sys.executable, "-m", "lab", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--allow-remote-control" in shown
