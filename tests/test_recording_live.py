"""Recorded, then played back: a real lab recorded (lb-lab record, the Record button), exported,
and played in Chromium from file:// with the network blocked; bad recordings in the player."""

from __future__ import annotations

import base64
import contextlib
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SCREENSHOTS, needs_chromium
from jsonschema import Draft202012Validator
from test_recording import BAD
from test_service import launched
from test_web_access import app_for, http_client

from lab.recording.format import read
from lab.vocabulary import messages
from lab.web import presenter
from lab.web.access import Access
from lab.web.app import socketio
from lab.web.controller import LabController

SECONDS = 5
RATE = 40


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, str]]:
    """(page, service) of one `lb-lab serve` with steady traffic."""
    process, output = launched(
        "serve", "--port", "0", "--balancer-port", "0", "--backend-port", "0",
        "--rate", str(RATE), until="Press Ctrl-C",
    )  # fmt: skip
    try:
        page = re.search(r"Load Balancing Lab: (http://\S+/)", output).group(1)
        service = re.search(r"service: +(http://\S+/)", output).group(1)
        yield page, service
    finally:
        process.terminate()
        assert process.wait(10) == 0


def lb_lab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def recording(served, tmp_path_factory) -> Path:
    """5 s of the served lab, recorded with `lb-lab record`."""
    path = tmp_path_factory.mktemp("recorded") / "run.lbrec"
    result = lb_lab("record", "--seconds", str(SECONDS), "--out", str(path), "--lab", served[1])
    assert result.returncode == 0, result.stderr
    assert f"{path}: " in result.stdout and "lb-lab export" in result.stdout
    return path


def test_lb_lab_record_keeps_the_first_state_then_every_batch_with_its_time(recording):
    recorded = read(recording.read_bytes())
    header, everything = recorded.header, recorded.messages
    # Every message of the stream is recorded; the classroom's own come and go with it.
    assert {m["name"] for m in everything} <= {"state", "batch", "classroom"}
    found = [m for m in everything if m["name"] in ("state", "batch")]
    assert header["made"]["by"] == "lb-lab record"
    assert "--seconds 5" in header["made"]["command"] and header["made"]["settings"]["rate"] == RATE
    assert SECONDS - 0.5 < header["duration_s"] <= SECONDS
    assert found[0]["name"] == "state" and {m["name"] for m in found[1:]} == {"batch"}
    times = [m["t"] for m in everything]
    assert times == sorted(times) and times[0] == 0
    assert len(found) > SECONDS * 10  # about 20 batches a second
    # The first state may have read the counters after the first batch did: `read` orders them.
    readings = sorted((m["data"]["counters"] for m in found), key=lambda c: c["read"])
    sent = [counters["traffic"]["sent"] for counters in readings]
    assert sent == sorted(sent) and sent[-1] - sent[0] > RATE * SECONDS / 2
    shapes = {"state": messages.state(), "batch": messages.batch()}
    shapes["classroom"] = messages.classroom()
    for message in everything:  # recorded as the lab sent them, in the declared shapes
        errors = Draft202012Validator(shapes[message["name"]]).iter_errors(message["data"])
        assert [e.message for e in errors] == []


def test_lb_lab_record_says_clearly_when_it_cannot(tmp_path):
    out = tmp_path / "x.lbrec"
    result = lb_lab("record", "--seconds", "1", "--out", str(out), "--lab", "http://127.0.0.1:1/")
    assert result.returncode == 1 and "no lab service at http://127.0.0.1:1/" in result.stderr
    assert not out.exists()
    result = lb_lab("record", "--seconds", "0", "--out", str(out), "--lab", "http://127.0.0.1:1/")
    assert result.returncode == 2 and "--seconds must be 1-600" in result.stderr


@contextlib.contextmanager
def offline_page(chromium, name: str) -> Iterator:
    """A page that may load file:// only; fails on any console error or other request."""
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    elsewhere: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_files)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    context.close()
    assert problems == [] and elsewhere == []


def exported(recording: Path, out: Path) -> str:
    result = lb_lab("export", str(recording), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return (out / "index.html").as_uri()


LAB = "document.querySelector('[data-lab]').lab"
STORE = f"{LAB}.store"
CARD_TOTALS = """() => Object.fromEntries([...document.querySelectorAll('.card')].map(
    (card) => [card.dataset.backend, Number(card.querySelector('[data-k=total]').textContent)]))"""


def seek(page, seconds: float) -> None:
    page.eval_on_selector(
        "[data-part=player-seek]",
        "(el, t) => { el.value = String(t); el.dispatchEvent(new Event('input')); }",
        seconds,
    )


def shown_totals(page) -> dict:
    """The cards' routed numbers, once the page has drawn its panels (five times a second)."""
    page.wait_for_timeout(0)
    page.wait_for_function(
        f"""() => {{
          const c = {STORE}.counters;
          return [...document.querySelectorAll('.card')].every((card) =>
            Number(card.querySelector('[data-k=total]').textContent)
              === c.backends[card.dataset.backend].total);
        }}""",
        timeout=5000,
    )
    return page.evaluate(CARD_TOTALS)


@needs_chromium
def test_the_export_plays_from_file_with_the_network_blocked(chromium, recording, tmp_path):
    recorded = read(recording.read_bytes())
    last = recorded.last_batch["counters"]
    counted = [m for m in recorded.messages if m["name"] in ("state", "batch")]
    assert last["read"] == max(m["data"]["counters"]["read"] for m in counted)
    with offline_page(chromium, "recording-player") as page:
        page.goto(exported(recording, tmp_path / "player"))
        page.wait_for_function("document.body.dataset.player === 'playing'", timeout=10000)
        banner = page.inner_text("[data-part=player-banner]")
        assert "Recording of a real run" in banner and "lb-lab record" in banner
        assert recorded.header["made"]["at"][:10] in banner  # when it was made
        page.wait_for_function("document.body.dataset.player === 'ended'", timeout=SECONDS * 4000)
        assert page.evaluate(f"{STORE}.counters") == last  # exactly the last batch's
        assert shown_totals(page) == {n: b["total"] for n, b in last["backends"].items()}
        assert f"routed {last['total']}" in page.inner_text("[data-part=totals]")

        # Seek back to the middle: the picture is rebuilt as it was at that batch.
        middle = recorded.header["duration_s"] / 2
        then = [m for m in counted if m["t"] <= middle][-1]["data"]["counters"]
        assert then["total"] < last["total"]
        seek(page, middle)
        assert page.evaluate(f"{STORE}.counters") == then
        assert shown_totals(page) == {n: b["total"] for n, b in then["backends"].items()}

        # Step: the next batch, exactly.
        following = [m for m in counted if m["t"] > middle][0]["data"]["counters"]
        page.click("[data-part=player-step]")
        assert page.evaluate(f"{STORE}.counters") == following

        # Forward to the end again, and commands are refused: it is a recording.
        seek(page, recorded.header["duration_s"])
        assert page.evaluate(f"{STORE}.counters") == last
        answer = page.evaluate(
            "document.querySelector('[data-lab]').lab.command({action: 'pause'})"
        )
        assert answer["ok"] is False and "recording" in answer["error"]
        assert page.is_hidden("[data-part=record]")  # no lab controls in a recording


def spoiled_export(recording: Path, out: Path, spoil) -> str:
    url = exported(recording, out)
    data = spoil(recording.read_bytes())
    encoded = base64.b64encode(data).decode()
    (out / "recording.js").write_text(f'window.LB_LAB_RECORDING = "{encoded}";\n')
    return url


@needs_chromium
@pytest.mark.parametrize("kind", ["corrupt", "truncated", "truncated at a line", "newer version"])
def test_the_player_says_what_is_wrong_with_a_bad_recording_and_draws_nothing(
    chromium, recording, tmp_path, kind
):
    spoil, message = BAD[kind]
    with offline_page(chromium, f"recording-bad-{kind.replace(' ', '-')}") as page:
        page.goto(spoiled_export(recording, tmp_path / "player", spoil))
        page.wait_for_function("document.body.dataset.player === 'error'", timeout=10000)
        said = page.inner_text(".player-error")
        assert (
            said.startswith("This recording cannot be played:") and message.split(" (")[0] in said
        )
        assert page.is_hidden("[data-lab]") and page.is_hidden(".player")
        assert page.eval_on_selector_all(".card", "cards => cards.length") == 0
        assert page.evaluate("document.querySelector('[data-lab]').lab") is None


@needs_chromium
def test_the_record_button_records_the_lab_and_offers_the_file(chromium, served):
    page_url = served[0]
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        page.goto(page_url)
        page.wait_for_function(f"() => {STORE}.state !== null", timeout=10000)
        page.select_option("[data-part=record-seconds]", "5")
        page.click("[data-part=record]")
        page.wait_for_function(
            "() => document.querySelector('[data-part=record-status]').textContent"
            ".includes('recording')"
        )
        again = page.evaluate(
            "document.querySelector('[data-lab]').lab.command({action: 'record', seconds: 5})"
        )
        assert again == {"ok": False, "error": again["error"]} and "already" in again["error"]
        link = page.wait_for_selector("[data-part=record-status] a", timeout=20000)
        with page.expect_download() as download:
            link.click()
        data = Path(download.value.path()).read_bytes()
        assert re.fullmatch(r"run-\d{8}-\d{6}\.lbrec", download.value.suggested_filename)
    finally:
        context.close()
    recorded = read(data)
    assert recorded.header["made"]["by"] == "the Record button"
    assert 4.5 < recorded.header["duration_s"] <= 5.0
    assert (
        recorded.last_batch["counters"]["total"] > recorded.messages[0]["data"]["counters"]["total"]
    )
    assert problems == []


def test_the_front_serves_only_recordings_the_lab_made(served):
    for name in ("run-20990101-000000.lbrec", "..%2F..%2Fetc%2Fpasswd", "notes.txt"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(served[0] + "recordings/" + name, timeout=5)
        assert refused.value.code == 404


class FakeRecorder:
    def __init__(self) -> None:
        self.started: list[int] = []

    def start(self, seconds: int) -> None:
        self.started.append(seconds)


def test_in_a_classroom_only_the_presenter_may_record():
    lab = LabController()  # not started: `record` needs only its recorder
    lab.recorder = FakeRecorder()
    token = presenter.new_token()
    app = app_for(lab, Access.loopback().classroom(token))
    viewer = socketio.test_client(app, flask_test_client=http_client(app))
    answer = viewer.emit("command", {"action": "record", "seconds": 5}, callback=True)
    assert answer["ok"] is False and "only the presenter" in answer["error"]
    client = http_client(app)
    client.set_cookie(presenter.COOKIE, token)
    teacher = socketio.test_client(app, flask_test_client=client)
    assert teacher.emit("command", {"action": "record", "seconds": 5}, callback=True) == {
        "ok": True
    }
    assert lab.recorder.started == [5]
    refused = teacher.emit("command", {"action": "record", "seconds": 0}, callback=True)
    assert refused["ok"] is False and "seconds must be 1 to 600" in refused["error"]
    viewer.disconnect()
    teacher.disconnect()


def test_a_lab_without_the_service_says_recording_needs_it():
    answer = LabController().handle({"action": "record", "seconds": 5})
    assert answer == {"ok": False, "error": "recording needs the lab service (lb-lab serve)"}


@needs_chromium
def test_a_tutorial_page_embeds_the_player_with_an_iframe(chromium, recording, tmp_path):
    exported(recording, tmp_path / "run")
    tutorial = tmp_path / "tutorial.html"
    tutorial.write_text(
        "<!doctype html><title>A tutorial</title><p>Round robin, recorded:</p>\n"
        '<iframe src="run/index.html" title="A recorded run of Load Balancing Lab" '
        'width="900" height="600" style="border:0"></iframe>\n'
    )
    last = read(recording.read_bytes()).last_batch["counters"]
    with offline_page(chromium, "recording-iframe") as page:
        page.goto(tutorial.as_uri())
        player = page.frame_locator("iframe")
        player.locator("body[data-player=ended]").wait_for(timeout=SECONDS * 4000)
        assert "Recording of a real run" in player.locator("[data-part=player-banner]").inner_text()
        counters = player.locator("[data-lab]").evaluate("root => root.lab.store.counters")
        assert counters == last
