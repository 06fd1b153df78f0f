"""The Record button's side in the lab service: record its own stream, keep the file, serve it.

The `record` command (lab.web.commands) starts one recording at a time. It reads
the stream as any web front does (a subscriber of lab.service.stream, so every
message the lab publishes is recorded, whatever its name), for the seconds asked,
then writes the file into a folder of its own that lives as long as the service.
Each step is announced on the stream as a `recording` message, so every page
shows it and offers the file (GET /recordings/NAME on the service, relayed by the
web front at the same path).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from lab.recording.format import MAX_BYTES, Recorder, RecordingError, made
from lab.web.fields import CommandError

NAME = re.compile(r"^run-\d{8}-\d{6}(-\d+)?\.lbrec$")
ANNOUNCEMENT = "recording"  # the stream message about a recording (itself never recorded)

log = logging.getLogger(__name__)


def record(lab: Any, seconds: int) -> None:
    """The `record` command's handler (lab.web.commands)."""
    recorder = getattr(lab, "recorder", None)  # set by the lab service; not in a test's lab
    if recorder is None:
        raise CommandError("recording needs the lab service (lb-lab serve)")
    recorder.start(seconds)


class RecordingSink:
    """A stream subscriber that records instead of sending (lab.service.stream's Sink)."""

    def __init__(self, recorder: Recorder, clock: Any, failed: Any) -> None:
        self.recorder = recorder
        self.clock = clock
        self.failed = failed  # called once with the reason when the recording must stop

    def write(self, data: bytes) -> None:
        if data.startswith(b"HTTP/"):
            return  # the stream's HTTP head
        message = json.loads(data)
        if message["name"] == ANNOUNCEMENT:
            return
        try:
            self.recorder.add(message["name"], message["data"], self.clock())
        except RecordingError as exc:
            self.failed(str(exc))

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.failed("the lab's stream dropped the recording")


class ServiceRecorder:
    """One lab service's recordings: at most one running, files kept until the service stops."""

    def __init__(
        self, lab: Any, stream: Any, loop: asyncio.AbstractEventLoop, max_bytes: int = MAX_BYTES
    ) -> None:
        self.lab = lab
        self.max_bytes = max_bytes
        self.stream = stream
        self.loop = loop
        self.folder: Path | None = None
        self._lock = threading.Lock()
        self._busy = False
        self._subscriber: Any = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self, seconds: int) -> None:
        """Begin recording (from any thread); CommandError if one is already running."""
        with self._lock:
            if self._busy:
                raise CommandError("a recording is already running; wait for it to finish")
            self._busy = True
        self.loop.call_soon_threadsafe(self._begin, seconds)

    def _begin(self, seconds: int) -> None:
        settings = self.lab.settings.as_json()
        recorder = Recorder(made("the Record button", "record", settings, seconds), self.max_bytes)
        sink = RecordingSink(recorder, self.loop.time, self._refuse)
        self._subscriber = self.stream.subscribe(sink, self.lab.describe)
        self._timer = self.loop.call_later(seconds, self._end, recorder)
        self.stream.publish(ANNOUNCEMENT, {"status": "recording", "seconds": seconds})

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._subscriber is not None:
            self.stream.unsubscribe(self._subscriber)
            self._subscriber.dropped = True  # its first state, if still being read, is not sent
        self._subscriber = self._timer = None

    def _refuse(self, why: str) -> None:
        if self._subscriber is None:
            return
        self._stop()
        self._done({"status": "refused", "error": why})

    def _end(self, recorder: Recorder) -> None:
        self._stop()
        self.loop.run_in_executor(None, self._save, recorder)  # compressing takes a moment

    def _save(self, recorder: Recorder) -> None:
        try:
            data = recorder.finish()
        except RecordingError as exc:
            self._done({"status": "refused", "error": str(exc)})
            return
        path = self._place()
        path.write_bytes(data)
        self._done(
            {"status": "ready", "file": path.name, "bytes": len(data),
             "seconds": recorder.last_t}
        )  # fmt: skip

    def _place(self) -> Path:
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="lb-lab-recordings-"))
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        path, n = self.folder / f"run-{stamp}.lbrec", 1
        while path.exists():
            path, n = self.folder / f"run-{stamp}-{n}.lbrec", n + 1
        return path

    def _done(self, announcement: dict) -> None:
        with self._lock:
            self._busy = False
        if announcement["status"] == "refused":
            log.warning("recording refused: %s", announcement["error"])
        self.stream.publish(ANNOUNCEMENT, announcement)

    def file(self, name: str) -> bytes | None:
        """A finished recording's bytes, or None (no such file)."""
        if self.folder is None or not NAME.match(name):
            return None
        path = self.folder / name
        return path.read_bytes() if path.is_file() else None

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
