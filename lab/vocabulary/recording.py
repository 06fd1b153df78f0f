"""A recording's lines (lab.recording) and the `recording` message about one being made."""

from __future__ import annotations

from lab.vocabulary.types import (
    Schema,
    anything,
    constant,
    listing,
    maybe,
    number,
    record,
    text,
    whole,
)


def header() -> Schema:
    made = record(
        "how the recording was made",
        {
            "at": text("when it began, UTC (ISO 8601)"),
            "by": text("what made it: `lb-lab record` or the Record button"),
            "command": text("the command line (`record`: the page's command)"),
            "settings": anything("the lab's settings when it began (lb-lab serve's flags)"),
            "lab_version": text("the lb-lab version that recorded it"),
            "build": text("the balancer's build: compiled with mypyc, or pure Python (why)"),
        },
    )
    return record(
        "a recording's first line",
        {
            "format": constant("lb-lab recording", "what the file is"),
            "version": whole("the format's version; a player plays its own and older ones", 1),
            "made": made,
            "seconds": number("the seconds asked for", 0),
            "duration_s": number("the time of its last message, seconds", 0),
            "sides": listing(text("a side"), "the sides recorded (`lab` when one)"),
            "lesson": maybe(anything("the lesson open when it began, as the state's `lesson`")),
            "section": maybe(text("the presenter's section then, if the classroom said one")),
            "limits": record(
                "its bounds",
                {
                    "max_bytes": whole("the most it may weigh, compressed", 1),
                    "routes_per_s": whole("new requests kept per second; more are counted", 1),
                },
            ),
        },
    )


def message() -> Schema:
    return record(
        "one message of the lab's stream, as it was sent",
        {
            "t": number("seconds since the first state", 0),
            "name": text("the stream's name for it: state, batch, or another"),
            "data": anything("the message (see `state` and `batch`)"),
        },
    )


def end() -> Schema:
    fields = {"messages": whole("messages recorded", 1), "omitted": whole("events left out", 0)}
    return record(
        "a recording's last line: the file is whole",
        {"end": record("what the recording holds", fields)},
    )


def news() -> Schema:
    return record(
        "the stream's `recording` message: a Record button's recording began, or ended",
        {
            "status": text("where it is", ("recording", "ready", "refused")),
            "seconds": number("recording: asked for; ready: recorded", 0),
            "file": text("ready: its name, to download from /recordings/NAME"),
            "bytes": whole("ready: its size, compressed", 0),
            "error": text("refused: why"),
        },
        optional=("seconds", "file", "bytes", "error"),
    )
