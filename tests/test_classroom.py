"""Classroom socket tests: viewers' commands refused, the presenter's obeyed."""

import pytest
from test_web_access import app_for, http_client, paused

from lab.web import presenter
from lab.web.access import Access
from lab.web.app import socketio
from lab.web.controller import LabController, LabSettings

TOKEN = presenter.new_token()


@pytest.fixture(scope="module")
def lab():
    controller = LabController(
        LabSettings(balancer_port=0, first_backend_port=0, paused=True, rate=5, seed=3)
    )
    controller.start()
    yield controller
    controller.close()


def connect(app, cookie: str | None, auth=None):
    http = http_client(app)
    if cookie is not None:
        http.set_cookie(presenter.COOKIE, cookie)
    return socketio.test_client(app, flask_test_client=http, auth=auth)


def test_viewer_commands_refused_presenter_obeyed(lab):
    app = app_for(lab, Access.loopback().classroom(TOKEN))
    for cookie, auth in [(None, None), ("wrong", None), (None, {"role": "presenter"})]:
        viewer = connect(app, cookie, auth)
        answer = viewer.emit("command", {"action": "resume"}, callback=True)
        assert answer["ok"] is False and "only the presenter" in answer["error"]
        assert TOKEN not in str(viewer.get_received())  # the token never reaches a viewer
        viewer.disconnect()
    assert paused(lab)
    teacher = connect(app, TOKEN)
    assert teacher.emit("command", {"action": "resume"}, callback=True) == {"ok": True}
    assert teacher.emit("command", {"action": "pause"}, callback=True) == {"ok": True}
    teacher.disconnect()
