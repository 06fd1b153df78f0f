"""The classroom over Socket.IO (test clients, a real lab): following, the class's question,
the viewer count, and what a viewer may and may not do."""

from __future__ import annotations

import pytest
from conftest import wait_for
from test_web_access import http_client, paused

from lab.web import presenter
from lab.web.access import Access
from lab.web.app import create_app, socketio
from lab.web.bucket import Buckets
from lab.web.controller import LabController, LabSettings

TOKEN = presenter.new_token()
PRESENTER_ONLY = ("set_position", "set_step", "ask_class", "reveal", "end_question")


@pytest.fixture(scope="module")
def lab():
    controller = LabController(
        LabSettings(balancer_port=0, first_backend_port=0, paused=True, rate=5, seed=3)
    )
    controller.start()
    yield controller
    controller.close()


@pytest.fixture(scope="module")
def app(lab):
    """One classroom app over the lab, attached as `lb-lab serve` attaches it (relay, room)."""
    access = Access.loopback().classroom(TOKEN)
    return create_app({"TESTING": True, "ASYNC_MODE": "threading", "CONTROLLER": lab,
                       "ACCESS": access})  # fmt: skip


class Page:
    """One browser's socket: what it was sent, and its commands and answers."""

    def __init__(self, app, presenter_cookie: str | None = None, auth=None) -> None:
        http = http_client(app)
        if presenter_cookie is not None:
            http.set_cookie(presenter.COOKIE, presenter_cookie)
        self.client = socketio.test_client(app, flask_test_client=http, auth=auth)
        self.seen: list[dict] = []

    def received(self, name: str) -> list:
        self.seen.extend(self.client.get_received())
        return [m["args"][0] for m in self.seen if m["name"] == name]

    def classroom(self) -> dict | None:
        """The newest classroom this page knows (from a `classroom` or a `state`)."""
        self.received("")
        for message in reversed(self.seen):
            if message["name"] == "classroom":
                return message["args"][0]
            if message["name"] == "state":
                return message["args"][0]["classroom"]
        return None

    def wait(self, test, what: str) -> dict:
        return wait_for(
            lambda: (c := self.classroom()) is not None and test(c) and c, 10, what=what
        )

    def command(self, action: str, **fields) -> dict:
        return self.client.emit("command", {"action": action, **fields}, callback=True)

    def answer(self, round_id: int, option: str, viewer: str) -> dict:
        data = {"round": round_id, "option": option, "viewer": viewer}
        return self.client.emit("answer", data, callback=True)

    def close(self) -> None:
        self.client.disconnect()


def test_viewers_follow_the_presenter_and_cannot_move_the_class(app):
    teacher, student = Page(app, TOKEN), Page(app)
    assert student.received("you") == [{"role": "viewer", "classroom": True}]
    assert teacher.received("you")[0]["role"] == "presenter"
    moved = teacher.command("set_position", lesson="round-robin", section=2, panel=True,
                            presenter_view=True)  # fmt: skip
    assert moved == {"ok": True}
    where = {"lesson": "round-robin", "section": 2, "panel": True, "presenter_view": True}
    student.wait(lambda c: c["position"] == where, "the viewer to see the presenter's position")
    for action in PRESENTER_ONLY:
        refused = student.command(action)
        assert refused["ok"] is False and "only the presenter" in refused["error"], action
    assert teacher.command("set_position", lesson="no-such", section=0, panel=True,
                           presenter_view=False)["ok"] is False  # fmt: skip
    assert student.classroom()["position"] == where  # a refused move changed nothing
    teacher.close()
    student.close()


def test_a_forged_role_is_ignored_and_a_viewer_is_sent_no_token(app):
    forged = Page(app, auth={"role": "presenter", "token": "guess"})
    assert forged.received("you") == [{"role": "viewer", "classroom": True}]
    refused = forged.command("reveal")
    assert refused["ok"] is False and "only the presenter" in refused["error"]
    teacher = Page(app, TOKEN)
    teacher.command("set_position", section=0, panel=False, presenter_view=False)
    forged.wait(lambda c: c["position"]["panel"] is False, "a classroom message")
    said = str(forged.seen)
    assert TOKEN not in said and "qr_svg" not in said and "viewer_url" not in said
    assert "<svg" in teacher.received("you")[0]["qr_svg"]  # the presenter's page has it
    forged.close()
    teacher.close()


def test_a_class_question_counts_each_viewer_once_and_reveals_the_real_decision(app, lab):
    teacher = Page(app, TOKEN)
    ann, bob = Page(app), Page(app)
    assert teacher.command("ask_class", slug="weighted-round-robin", index=2) == {"ok": True}
    question = ann.wait(lambda c: c["round"] is not None and c["round"]["status"] == "open",
                        "the question to open")["round"]  # fmt: skip
    assert question["options"] == ["b1", "b2", "b3"] and question["tally"] == dict.fromkeys(
        ["b1", "b2", "b3"], 0
    )
    assert paused(lab) and "round" in ann.classroom()["holds"]  # held, as everyone sees
    assert ann.answer(question["id"], "b2", "ann-000001") == {"ok": True}
    assert ann.answer(question["id"], "b2", "ann-000001") == {"ok": True}  # again: one vote
    assert bob.answer(question["id"], "b3", "bob-000002") == {"ok": True}
    assert bob.answer(question["id"], "b1", "bob-000002") == {"ok": True}  # moved, not added
    stuffed = bob.answer(question["id"], "b1", "bob-000003")
    assert stuffed["ok"] is False and "another viewer" in stuffed["error"]
    bad = ann.answer(question["id"], "b9", "ann-000001")
    assert bad["ok"] is False and "b1, b2, b3" in bad["error"]
    teacher.wait(lambda c: c["round"]["tally"] == {"b1": 1, "b2": 1, "b3": 0}, "the tally")
    assert bob.command("reveal")["ok"] is False  # a viewer cannot reveal
    assert teacher.command("reveal") == {"ok": True}
    revealed = ann.wait(lambda c: c["round"]["status"] == "revealed", "the reveal")["round"]
    outcome = revealed["outcome"]
    assert outcome["answer"] in ("b1", "b2", "b3") and outcome["reason"]
    assert revealed["tally"] == {"b1": 1, "b2": 1, "b3": 0}  # the votes were not touched
    late = bob.answer(question["id"], "b2", "bob-000002")
    assert late["ok"] is False and "revealed" in late["error"]
    assert teacher.command("end_question") == {"ok": True}
    ann.wait(lambda c: c["round"] is None and c["holds"] == [], "the question to close")
    assert paused(lab)  # it was paused before the question: it stays paused
    for page in (teacher, ann, bob):
        page.close()


def test_step_mode_is_lab_state_every_page_sees(app, lab):
    teacher, student = Page(app, TOKEN), Page(app)
    assert teacher.command("resume") == {"ok": True}
    assert teacher.command("set_step", on=True) == {"ok": True}
    student.wait(lambda c: c["step"] is True, "step mode on every page")
    assert paused(lab)
    assert teacher.command("set_step", on=False) == {"ok": True}
    student.wait(lambda c: c["step"] is False, "step mode off every page")
    assert not paused(lab)  # it ran before step mode: it runs again
    assert teacher.command("pause") == {"ok": True}
    teacher.close()
    student.close()


def test_the_viewer_count_follows_connections(app):
    teacher = Page(app, TOKEN)  # every other page of this module has closed
    teacher.wait(lambda c: c["viewers"] == 0, "no viewers")
    students = [Page(app) for _ in range(3)]
    teacher.wait(lambda c: c["viewers"] == 3, "three viewers (the presenter is none)")
    students.pop().close()
    teacher.wait(lambda c: c["viewers"] == 2, "one viewer fewer")
    for page in [teacher, *students]:
        page.close()


def test_a_flood_of_answers_from_one_viewer_is_bounded(app):
    app.config["ANSWERS"] = Buckets(rate=1.0, capacity=5.0, clock=lambda: 0.0)
    flooder = Page(app)
    answers = [flooder.answer(1, "b1", "flood-0001") for _ in range(12)]
    assert all("too many answers" in a.get("error", "") for a in answers[5:])
    assert not any("too many" in a.get("error", "") for a in answers[:5])
    flooder.close()
    app.config["ANSWERS"] = Buckets()


def test_a_command_flood_from_one_viewer_is_bounded_and_the_presenter_carries_on(app):
    app.config["BUCKETS"] = Buckets(rate=1.0, capacity=5.0, clock=lambda: 0.0)
    try:
        flooder, teacher = Page(app), Page(app, TOKEN)
        answers = [flooder.command("resume") for _ in range(12)]
        assert all("only the presenter" in a["error"] for a in answers[:5])
        assert all("too many commands" in a["error"] for a in answers[5:])
        assert teacher.command("pause") == {"ok": True}  # the bucket is the viewer's own
        flooder.close()
        teacher.close()
    finally:
        app.config["BUCKETS"] = Buckets()


def test_a_malformed_viewer_id_does_not_bind_the_connection(app):
    page = Page(app)
    refused = page.answer(1, "b1", "<bad id>")
    assert refused["ok"] is False and "viewer must be" in refused["error"]
    later = page.answer(1, "b1", "good-viewer-1")  # not "answers as another viewer"
    assert "another viewer" not in later.get("error", "")
    for bad in ({"round": 1, "option": "b1"}, ["b1"], {"round": 1, "option": "b1", "viewer": "v"
                                                       * 10, "extra": 1}):  # fmt: skip
        answer = page.client.emit("answer", bad, callback=True)
        assert answer["ok"] is False and "an answer is" in answer["error"]
    page.close()


def test_every_classroom_and_you_message_is_as_declared(app):
    from jsonschema import Draft202012Validator

    from lab.vocabulary import messages

    teacher, student = Page(app, TOKEN), Page(app)
    assert teacher.command("ask_class", slug="weighted-round-robin", index=2) == {"ok": True}
    question = student.wait(lambda c: c["round"] is not None, "the question")["round"]
    assert student.answer(question["id"], "b2", "declared-01") == {"ok": True}
    # An answer changes no `state`: only a `classroom` message brings the tally.
    wait_for(
        lambda: any(
            c["round"] and c["round"]["answers"] == 1 for c in teacher.received("classroom")
        ),
        10,
        what="a classroom message with the answer",
    )
    assert teacher.command("reveal") == {"ok": True}
    teacher.wait(lambda c: c["round"]["status"] == "revealed", "the reveal")
    assert teacher.command("end_question") == {"ok": True}
    student.wait(lambda c: c["round"] is None, "the question to close")
    check = {name: Draft202012Validator(getattr(messages, name)()) for name in ("classroom", "you")}
    seen = [m for page in (teacher, student) for m in page.seen if m["name"] in check]
    assert {m["name"] for m in seen} == {"classroom", "you"}
    mistakes = [
        f"{m['name']}: {'/'.join(map(str, e.path))}: {e.message}"
        for m in seen
        for e in check[m["name"]].iter_errors(m["args"][0])
    ]
    assert mistakes == []
    teacher.close()
    student.close()


def test_a_class_question_about_a_number_runs_its_experiment_and_judges_by_its_claims(app, lab):
    """The hashing lesson's mod-N question: Reveal adds b4, counts afresh and sends one request per
    client; the share of clients that moved decides which answer was right."""
    (index,) = [
        i
        for i, d in enumerate(lab.lessons.get("hashing").directives)
        if d.kind == "predict" and d.judges
    ]
    teacher, ann, bob = Page(app, TOKEN), Page(app), Page(app)
    assert teacher.command("open_lesson", slug="hashing") == {"ok": True}
    assert teacher.command("send", count=32) == {"ok": True}  # one request from each client
    wait_for(lambda: lab.traffic_state()["counters"]["completed"] == 32, 15, what="32 answers")
    assert teacher.command("ask_class", slug="hashing", index=index) == {"ok": True}
    question = ann.wait(lambda c: c["round"] is not None and c["round"]["status"] == "open",
                        "the question to open")["round"]  # fmt: skip
    quarter, half, most = question["options"]
    assert ann.answer(question["id"], quarter, "ann-000011") == {"ok": True}
    assert bob.answer(question["id"], most, "bob-000012") == {"ok": True}
    assert len(lab.backends) == 3  # nothing of the experiment has happened yet
    assert teacher.command("reveal") == {"ok": True}
    revealed = ann.wait(lambda c: c["round"]["status"] == "revealed", "the reveal")["round"]
    outcome = revealed["outcome"]
    # The real experiment ran: b4 was added, and every client sent again.
    assert sorted(lab.backends) == ["b1", "b2", "b3", "b4"]
    assert lab.traffic_state()["counters"]["completed"] == 32  # counted afresh, then 32 more
    moved = float(outcome["reason"].split("moved = ")[1].split()[0])
    # Hash mod 3 and hash mod 4 agree for about one client in four: most move.
    assert moved >= 0.625 and outcome["answer"] == most
    assert outcome["reason"] == f"moved = {moved:g} (moved >= 0.625)"
    assert revealed["tally"] == {quarter: 1, half: 0, most: 1}
    assert teacher.command("end_question") == {"ok": True}
    ann.wait(lambda c: c["round"] is None and c["holds"] == [], "the question to close")
    assert paused(lab)
    for page in (teacher, ann, bob):
        page.close()
