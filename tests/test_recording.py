"""Recordings without a lab: the format, its sampling and bound, bad files, the export's folder."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from jsonschema import Draft202012Validator

from lab.recording import bundle as bundling
from lab.recording.export import export
from lab.recording.format import (
    VERSION,
    Recorder,
    RecordingError,
    RecordingTooLarge,
    Sampler,
    made,
    read,
)
from lab.recording.service import ServiceRecorder
from lab.service.stream import Stream
from lab.vocabulary import recording as declared
from lab.web.fields import CommandError

STATIC_JS = Path(__file__).resolve().parents[1] / "static" / "js"


def state(total: int = 0, read_no: int = 1) -> dict:
    return {"lesson": {"slug": "round-robin", "title": "Round robin"}, "counters":
            {"total": total, "read": read_no}, "backends": []}  # fmt: skip


def batch(first: int, count: int, total: int, read_no: int) -> dict:
    """`count` requests r{first}.. routed and done, with exact counters."""
    events = []
    for n in range(first, first + count):
        events += [{"type": "route", "id": f"r{n}", "backend": "b1"},
                   {"type": "done", "id": f"r{n}", "status": 200}]  # fmt: skip
    return {"events": events, "omitted": 0, "latency": [], "latency_now": None,
            "counters": {"total": total, "read": read_no}}  # fmt: skip


def recorded(seconds: int = 3, per_batch: int = 5, **limits) -> tuple[Recorder, bytes]:
    recorder = Recorder(made("a test", "pytest", {"backends": 3}, seconds), **limits)
    recorder.add("state", state(), 100.0)
    total = 0
    for n in range(seconds * 20):
        total += per_batch
        recorder.add("batch", batch(total - per_batch, per_batch, total, n + 2), 100.05 + n * 0.05)
    return recorder, recorder.finish()


def lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(data).splitlines()]


def test_a_recording_is_a_header_the_messages_in_order_and_an_end():
    recorder, data = recorded()
    rows = lines(data)
    header, messages, end = rows[0], rows[1:-1], rows[-1]
    assert header["format"] == "lb-lab recording" and header["version"] == VERSION
    assert header["made"]["by"] == "a test" and header["made"]["settings"] == {"backends": 3}
    assert header["lesson"] == {"slug": "round-robin", "title": "Round robin"}
    assert header["sides"] == ["lab"] and header["duration_s"] == pytest.approx(3.0, abs=0.01)
    assert [m["name"] for m in messages] == ["state"] + ["batch"] * 60
    assert [m["t"] for m in messages] == sorted(m["t"] for m in messages)
    assert messages[0]["t"] == 0 and end == {"end": {"messages": 61, "omitted": 0}}
    for schema, rows_of in ((declared.header(), [header]), (declared.message(), messages),
                            (declared.end(), [end])):  # fmt: skip
        validator = Draft202012Validator(schema)
        assert [e.message for row in rows_of for e in validator.iter_errors(row)] == []
    assert read(data).last_batch == messages[-1]["data"]


def test_messages_before_the_first_state_are_left_out_and_any_other_name_is_kept():
    recorder = Recorder(made("a test", "pytest", {}, 1))
    recorder.add("batch", batch(0, 1, 1, 1), 1.0)  # no picture to draw it on yet
    recorder.add("state", state(1, 2), 2.0)
    recorder.add("side_batch", {"side": "right", "events": []}, 2.5)  # a comparison's side
    rows = lines(recorder.finish())
    assert [(r["name"], r["t"]) for r in rows[1:-1]] == [("state", 0), ("side_batch", 0.5)]
    assert rows[0]["sides"] == ["right"]


def test_past_its_budget_events_are_sampled_and_counters_stay_exact():
    sampler = Sampler(per_s=10)
    kept = [sampler.batch(batch(n * 8, 8, n * 8 + 8, n), 0.1 * n) for n in range(5)]
    routes = [e for b in kept for e in b["events"] if e["type"] == "route"]
    dones = [e for b in kept for e in b["events"] if e["type"] == "done"]
    assert len(routes) == 10  # the budget of one second
    assert {e["id"] for e in dones} == {e["id"] for e in routes}  # no done without its route
    assert sum(b["omitted"] for b in kept) == 40 - 10 == sampler.omitted
    assert [b["counters"]["total"] for b in kept] == [8, 16, 24, 32, 40]  # untouched
    assert len(sampler.batch(batch(100, 8, 48, 9), 1.2)["events"]) == 16  # a new second


def test_a_done_whose_route_was_left_out_in_an_earlier_batch_is_left_out_too():
    sampler = Sampler(per_s=1)
    sampler.batch({"events": [{"type": "route", "id": "a"}, {"type": "route", "id": "b"}]}, 0)
    later = sampler.batch({"events": [{"type": "done", "id": "a"}, {"type": "done", "id": "b"},
                                      {"type": "health", "backend": "b1"}]}, 0.5)  # fmt: skip
    assert later["events"] == [{"type": "done", "id": "a"}, {"type": "health", "backend": "b1"}]


def test_a_recording_past_its_bound_is_refused_with_the_reason():
    with pytest.raises(RecordingTooLarge, match=r"passed its bound of 0\.002 MB .* after \d"):
        recorded(seconds=5, per_batch=20, max_bytes=2000)


def test_nothing_recorded_is_refused():
    with pytest.raises(RecordingError, match="the lab sent no state"):
        Recorder(made("a test", "pytest", {}, 1)).finish()


def corrupt(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0x55 for b in data[middle : middle + 16]) + data[middle + 16 :]


def newer(data: bytes) -> bytes:
    rows = lines(data)
    rows[0]["version"] = VERSION + 1
    return gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows))


def cut_at_a_line(data: bytes) -> bytes:
    """Whole gzip, but the text stops after a whole line: no end line."""
    text = gzip.decompress(data)
    return gzip.compress(text[: text.rindex(b"\n", 0, len(text) // 2) + 1])


BAD = {
    "corrupt": (corrupt, "corrupt"),
    "truncated": (lambda d: d[: len(d) * 2 // 3], "truncated"),
    "truncated at a line": (cut_at_a_line, "truncated: it has no end line"),
    "newer version": (newer, f"made by a newer lb-lab (format version {VERSION + 1}"),
    "not gzip": (lambda d: b'{"format": "lb-lab recording"}\n', "not gzip-compressed"),
}


@pytest.mark.parametrize("kind", BAD)
def test_a_bad_recording_is_refused_with_what_is_wrong(kind):
    spoil, message = BAD[kind]
    with pytest.raises(RecordingError, match=message.replace("(", r"\(")):
        read(spoil(recorded()[1]))


def lb_lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("kind", BAD)
def test_export_refuses_a_bad_recording_and_writes_nothing(kind, tmp_path):
    spoil, message = BAD[kind]
    path = tmp_path / "run.lbrec"
    path.write_bytes(spoil(recorded()[1]))
    result = lb_lab("export", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "nothing was written" in result.stderr
    assert not (tmp_path / "out").exists()


def test_export_writes_the_page_its_scripts_and_the_recording(tmp_path):
    path = tmp_path / "run.lbrec"
    data = recorded()[1]
    path.write_bytes(data)
    result = lb_lab("export", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    html = (out / "index.html").read_text()
    assert "static/js/player.bundle.js" in html and "recording.js" in html
    assert "socket.io" not in html and "main.js" not in html  # nothing live, nothing fetched
    assert (out / "static" / "js" / "scene.js").read_text() == (STATIC_JS / "scene.js").read_text()
    assert (out / "run.lbrec").read_bytes() == data
    script = (out / "recording.js").read_text()
    assert script.startswith('window.LB_LAB_RECORDING = "') and script.endswith('";\n')


def test_export_will_not_write_into_a_folder_of_someone_elses(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds files of its own"):
        export(recorded()[1], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_the_bundle_holds_every_module_the_player_imports_each_in_its_own_scope():
    script = bundling.bundle(STATIC_JS, "player.js")
    for module in ("page.js", "scene.js", "store.js", "feed.js", "replay.js", "lessons/panel.js"):
        assert f'modules["{module}"] = (() => {{' in script
    assert "\nimport " not in script and "\nexport " not in script
    node = subprocess.run(["node", "--check", "-"], input=script, text=True, capture_output=True)
    assert node.returncode == 0 or node.returncode == 127, node.stderr


@pytest.mark.parametrize(
    "source",
    ['import * as all from "./x.js";', "export default 3;", 'const m = await import("./x.js");'],
)
def test_the_bundle_refuses_a_module_form_it_does_not_know(source, tmp_path):
    (tmp_path / "entry.js").write_text(source + "\n")
    with pytest.raises(bundling.BundleError, match="entry.js:1"):
        bundling.bundle(tmp_path, "entry.js")


class Watcher:
    """A reader of the service's stream: the `recording` announcements it saw."""

    def __init__(self) -> None:
        self.news: list[dict] = []

    def write(self, data: bytes) -> None:
        if not data.startswith(b"HTTP/"):
            message = json.loads(data)
            if message["name"] == "recording":
                self.news.append(message["data"])

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass


class QuietLab:
    """What the service's recorder asks of the lab: its settings and a full state."""

    settings = SimpleNamespace(as_json=lambda: {"backends": 3})

    def describe(self) -> dict:
        return state()


def record_in_a_service(max_bytes: int, noisy: bool) -> tuple[ServiceRecorder, list[dict]]:
    """The Record button's recording of 1 s of batches, as the lab service makes it."""

    async def scenario() -> tuple[ServiceRecorder, list[dict]]:
        loop = asyncio.get_running_loop()
        stream, watcher = Stream(loop), Watcher()
        stream.subscribe(watcher, QuietLab().describe)
        recorder = ServiceRecorder(QuietLab(), stream, loop, max_bytes)
        recorder.start(1)
        with pytest.raises(CommandError, match="already running"):
            recorder.start(1)
        for n in range(200):
            await asyncio.sleep(0.01)
            events = [{"type": "health", "backend": os.urandom(24).hex()} for _ in range(50)]
            stream.publish("batch", {"events": events if noisy else [], "omitted": 0,
                                     "counters": {"total": n, "read": n + 2}})  # fmt: skip
            if len(watcher.news) > 1:
                break
        if watcher.news[-1]["status"] == "refused":
            recorder.start(1)  # the next recording may begin
        return recorder, watcher.news

    return asyncio.run(scenario())


def test_the_record_button_refuses_a_recording_past_its_bound_with_the_reason():
    recorder, news = record_in_a_service(max_bytes=2000, noisy=True)
    assert news[0] == {"status": "recording", "seconds": 1}
    assert news[1]["status"] == "refused" and "passed its bound of 0.002 MB" in news[1]["error"]
    assert recorder.folder is None  # nothing was kept


def test_the_record_button_keeps_the_file_for_the_page_to_download():
    recorder, news = record_in_a_service(max_bytes=5_000_000, noisy=False)
    try:
        assert [n["status"] for n in news] == ["recording", "ready"]
        data = recorder.file(news[1]["file"])
        assert data is not None and len(data) == news[1]["bytes"]
        recorded = read(data)
        assert recorded.header["made"]["by"] == "the Record button"
        assert [m["name"] for m in recorded.messages[:2]] == ["state", "batch"]
        assert recorder.file("../" + news[1]["file"]) is None
    finally:
        recorder.close()
    assert not recorder.folder.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["record", "--seconds", "5", "--out", "x.lbrec"], "required: --lab"),
        (["record", "--seconds", "700", "--out", "x", "--lab", "127.0.0.1:1"], "must be 1-600"),
        (["record", "--seconds", "5", "--out", "x", "--lab", "http://h:1/stream"], "--lab: "),
        (["export", "--out", "dir"], "required: recording"),
        (["bench", "--recording", "--recording-seconds", "0"], "above 0"),
    ],
)
def test_bad_flags_exit_2_with_one_clear_line(args, message):
    result = lb_lab(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_export_of_a_missing_file_says_so(tmp_path):
    result = lb_lab("export", str(tmp_path / "none.lbrec"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and "cannot read" in result.stderr
    assert "No such file" in result.stderr and not (tmp_path / "out").exists()
