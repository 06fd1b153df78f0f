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


def test_presenter_url_becomes_a_strict_httponly_cookie(lab):
    app = app_for(lab, Access.loopback().classroom(TOKEN))
    http = http_client(app)
    wrong = http.get("/?key=nope")
    assert wrong.status_code == 403 and TOKEN not in wrong.get_data(as_text=True)
    answer = http.get(f"/?key={TOKEN}")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/")
    cookie = answer.headers["Set-Cookie"]
    assert f"{presenter.COOKIE}={TOKEN}" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    viewer_page = http_client(app).get("/")
    assert TOKEN not in viewer_page.get_data(as_text=True)
    teacher = socketio.test_client(app, flask_test_client=http)  # the cookie it was given
    assert teacher.emit("command", {"action": "pause"}, callback=True) == {"ok": True}
    teacher.disconnect()


def test_serve_prints_both_urls_and_a_qr_code():
    from lab.web.classroom import announce, qr_svg

    said = announce("http://192.0.2.2:5000/", TOKEN)
    assert "viewers:   http://192.0.2.2:5000/\n" in said
    assert f"presenter: http://192.0.2.2:5000/?key={TOKEN}" in said
    assert said.count("\n") > 15  # the QR code's rows
    assert qr_svg("http://192.0.2.2:5000/").lstrip().startswith("<svg")


def test_a_command_flood_gets_clear_refusals_and_the_lab_carries_on(lab):
    from lab.web.bucket import Buckets

    app = app_for(lab, Access.loopback().classroom(TOKEN))
    app.config["BUCKETS"] = Buckets(rate=1.0, capacity=5.0, clock=lambda: 0.0)
    flooder = connect(app, TOKEN)
    answers = [flooder.emit("command", {"action": "pause"}, callback=True) for _ in range(12)]
    assert answers[:5] == [{"ok": True}] * 5
    assert all(a["ok"] is False and "too many commands" in a["error"] for a in answers[5:])
    other = connect(app, TOKEN)  # the bucket is per connection
    assert other.emit("command", {"action": "pause"}, callback=True) == {"ok": True}
    flooder.disconnect()
    other.disconnect()


def test_one_user_on_loopback_may_script_the_lab_as_fast_as_it_likes(lab):
    from lab.web.bucket import Buckets

    app = app_for(lab, Access.loopback())
    app.config["BUCKETS"] = Buckets(rate=1.0, capacity=5.0, clock=lambda: 0.0)
    user = connect(app, None)
    answers = [user.emit("command", {"action": "pause"}, callback=True) for _ in range(12)]
    user.disconnect()
    assert answers == [{"ok": True}] * 12


def test_bucket_refills_with_time():
    from lab.web.bucket import Buckets

    now = [0.0]
    buckets = Buckets(rate=2.0, capacity=2.0, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [True, True, False]
    now[0] = 0.5  # one token back
    assert [buckets.take("a") for _ in range(2)] == [True, False]


def test_the_viewers_url_is_one_they_can_open_when_the_lab_serves_every_address():
    from lab.web.classroom import viewer_url

    own = {"127.0.0.1", "::1", "fe80::fc:ff:fe00:1", "192.0.2.2", "fd00::2"}
    assert viewer_url("0.0.0.0", 5000, own) == "http://192.0.2.2:5000/"  # not 0.0.0.0
    assert viewer_url("::", 5000, {"::1", "fd00::2"}) == "http://[fd00::2]:5000/"
    assert viewer_url("0.0.0.0", 5000, {"127.0.0.1"}) == ""  # none: the page's own address
    assert viewer_url("192.0.2.7", 5001, own) == "http://192.0.2.7:5001/"
    assert viewer_url("127.0.0.1", 5000, set()) == "http://127.0.0.1:5000/"
