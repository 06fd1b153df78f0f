"""Write and read a recording (the format is described in lab.recording).

`Recorder` is pure: it is handed each stream message with its time and gives back the
file's bytes, or refuses with RecordingTooLarge. `read` checks a file whole and gives
back its header and messages, or raises RecordingError with one line a person can act on.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

FORMAT = "lb-lab recording"
VERSION = 1
MAX_BYTES = 5_000_000  # compressed: a tutorial page's download, not a dataset
ROUTES_PER_S = 400  # new requests kept per second of recording; more are counted, not kept
FORGET_IDS = 50_000  # left-out request ids remembered (so their done/error is left out too)
REQUEST_KINDS = ("route", "done", "error", "queue")
FLUSH_EVERY = 64 << 10  # bytes of text between readings of the compressed size


class RecordingError(ValueError):
    """A file that is not a recording this lab can play; the message says why."""


class RecordingTooLarge(RecordingError):
    """A recording that passed MAX_BYTES while it was made."""


def encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class Sampler:
    """Keeps at most `per_s` new requests a second of the batches' events, and each kept
    request's later events; counts the rest into the batch's `omitted`."""

    def __init__(self, per_s: int = ROUTES_PER_S) -> None:
        self.per_s = per_s
        self.second = -1
        self.kept = 0  # new requests kept in the current second
        self.left_out: set[str] = set()
        self.omitted = 0

    def batch(self, data: dict, t: float) -> dict:
        events = data.get("events")
        if not isinstance(events, list):
            return data
        if int(t) != self.second:
            self.second, self.kept = int(t), 0
        kept: list = []
        dropped = 0
        for event in events:
            if not isinstance(event, dict) or event.get("type") not in REQUEST_KINDS:
                kept.append(event)  # health, config, checks: rare, and each one matters
                continue
            rid = event.get("id")
            if rid in self.left_out:
                continue
            if event.get("type") == "route" and not event.get("retry"):
                if self.kept >= self.per_s:
                    self.left_out.add(rid)
                    dropped += 1
                    continue
                self.kept += 1
            kept.append(event)
        if len(self.left_out) > FORGET_IDS:
            self.left_out.clear()  # their done events are long past
        if len(kept) == len(events):
            return data
        self.omitted += dropped
        return {**data, "events": kept, "omitted": data.get("omitted", 0) + dropped}


@dataclass
class Recorder:
    """Takes a stream's messages in order; `finish` gives the recording's bytes.

    `header` is what is known when recording starts (lab.recording.header); the
    lesson, section, sides and duration are added from what was recorded.
    """

    header: dict
    max_bytes: int = MAX_BYTES
    sampler: Sampler = field(default_factory=Sampler)
    lines: list[bytes] = field(default_factory=list)
    started: float | None = None
    last_t: float = 0.0
    first_state: dict | None = None
    sides: set[str] = field(default_factory=set)
    # Compresses as it goes, only to know the size now: a recording too large is refused
    # while it is made, not after a minute of work.
    _size: Any = field(default_factory=lambda: zlib.compressobj(6, zlib.DEFLATED, 31))
    compressed: int = 0
    _unflushed: int = 0

    def add(self, name: str, data: Any, now: float) -> None:
        """Record one message that arrived at `now` (seconds, any clock that only goes on)."""
        if self.first_state is None:
            if name != "state" or not isinstance(data, dict):
                return  # a recording starts with the whole picture
            self.started, self.first_state = now, data
        t = round(now - (self.started or now), 4)
        if name == "batch" and isinstance(data, dict):
            data = self.sampler.batch(data, t)
        if isinstance(data, dict) and isinstance(data.get("side"), str):
            self.sides.add(data["side"])
        line = encode({"t": t, "name": name, "data": data})
        self.lines.append(line)
        self.last_t = t
        self.compressed += len(self._size.compress(line))
        self._unflushed += len(line)
        if self._unflushed > FLUSH_EVERY:  # what the compressor holds back is counted too
            self.compressed += len(self._size.flush(zlib.Z_SYNC_FLUSH))
            self._unflushed = 0
        if self.compressed > self.max_bytes:
            raise RecordingTooLarge(
                f"the recording passed its bound of {self.max_bytes / 1e6:g} MB (compressed) "
                f"after {t:.1f} s; record fewer seconds or at a lower rate"
            )

    def finish(self) -> bytes:
        """The whole file; RecordingError if nothing was recorded."""
        if self.first_state is None:
            raise RecordingError("nothing was recorded: the lab sent no state")
        state = self.first_state
        classroom = state.get("classroom") if isinstance(state.get("classroom"), dict) else {}
        header = {
            "format": FORMAT,
            "version": VERSION,
            **self.header,
            "duration_s": self.last_t,
            "sides": sorted(self.sides) or ["lab"],
            "lesson": state.get("lesson"),
            "section": classroom.get("section"),
            "limits": {"max_bytes": self.max_bytes, "routes_per_s": self.sampler.per_s},
        }
        end = {"end": {"messages": len(self.lines), "omitted": self.sampler.omitted}}
        body = encode(header) + b"".join(self.lines) + encode(end)
        data = gzip.compress(body, compresslevel=6, mtime=0)
        if len(data) > self.max_bytes:
            raise RecordingTooLarge(
                f"the recording is {len(data) / 1e6:.3g} MB, past its bound of "
                f"{self.max_bytes / 1e6:g} MB; record fewer seconds or at a lower rate"
            )
        return data


@dataclass
class Recording:
    """A recording read whole: its header and its messages ({"t", "name", "data"})."""

    header: dict
    messages: list[dict]
    omitted: int

    @property
    def last_batch(self) -> dict | None:
        return next((m["data"] for m in reversed(self.messages) if m["name"] == "batch"), None)


def read(data: bytes) -> Recording:
    """Check a recording whole; RecordingError says what is wrong with it."""
    if data[:2] != b"\x1f\x8b":
        raise RecordingError("not a recording: it is not gzip-compressed (a .lbrec file is)")
    try:
        text = gzip.decompress(data)
    except EOFError:
        raise RecordingError(
            "the recording is truncated: its compressed data stops early"
        ) from None
    except (OSError, zlib.error) as exc:
        raise RecordingError(
            f"the recording is corrupt: it cannot be decompressed ({exc})"
        ) from None
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    try:
        rows = [json.loads(line) for line in lines]
    except ValueError as exc:
        raise RecordingError(f"the recording is corrupt: a line is not JSON ({exc})") from None
    if not rows or not isinstance(rows[0], dict) or rows[0].get("format") != FORMAT:
        raise RecordingError(f"not a recording: its first line is not a {FORMAT!r} header")
    header = rows[0]
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise RecordingError(f"the recording's version is not a number: {version!r}")
    if version > VERSION:
        raise RecordingError(
            f"the recording was made by a newer lb-lab (format version {version}; this one "
            f"plays up to version {VERSION}): update lb-lab to play it"
        )
    end = rows[-1].get("end") if isinstance(rows[-1], dict) else None
    if len(rows) < 2 or not isinstance(end, dict):
        raise RecordingError("the recording is truncated: it has no end line")
    messages = rows[1:-1]
    if end.get("messages") != len(messages):
        raise RecordingError(
            f"the recording is corrupt: its end line counts {end.get('messages')} messages, "
            f"it holds {len(messages)}"
        )
    for number, message in enumerate(messages, 2):
        if not (
            isinstance(message, dict)
            and isinstance(message.get("t"), (int, float))
            and isinstance(message.get("name"), str)
            and "data" in message
        ):
            raise RecordingError(f"the recording is corrupt: line {number} is not a message")
    if not messages or messages[0]["name"] != "state":
        raise RecordingError("the recording is corrupt: it does not start with a state")
    return Recording(header, messages, int(end.get("omitted") or 0))


def made(by: str, command: str, settings: Any, seconds: float) -> dict:
    """What a header says about how a recording was made (the rest comes from `finish`)."""
    import datetime

    from lab import __version__
    from lab.balancer import compiled

    at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {
        "made": {
            "at": at.replace("+00:00", "Z"),
            "by": by,
            "command": command,
            "settings": settings,
            "lab_version": __version__,
            "build": compiled.describe(),
        },
        "seconds": seconds,
    }
