"""The lab's one ordered stream: `state` and `batch` as NDJSON, to any number of subscribers.

Each line is `{"name": "state" | "batch", "data": {...}}`, in the order the lab
published them. A new subscriber first gets a full `state`, read for it alone,
then the live stream: lines published while its state was being read wait
behind it, so nothing comes before the picture it belongs to.

A slow subscriber never slows the lab. What it has not read waits in its
connection's write buffer; once that passes BEHIND_LIMIT bytes it is dropped
(the connection is closed), and a front that reconnects starts again with a
fresh `state`. Publishing is thread-safe: the lab's worker threads encode the
line themselves and hand it to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

BEHIND_LIMIT = 4 << 20  # bytes unsent to one subscriber (about 10 s of busy batches)
WAITING_LIMIT = 1000  # lines kept for a subscriber whose first state is still being read
HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
    b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
)

log = logging.getLogger(__name__)


def line(name: str, data: Any) -> bytes:
    """One message of the stream, as a line of JSON."""
    return json.dumps({"name": name, "data": data}, separators=(",", ":")).encode() + b"\n"


class Sink(Protocol):
    """Where a subscriber's bytes go (an asyncio transport, or a fake in tests)."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def close(self) -> None: ...


class Subscriber:
    """One reader of the stream: waiting for its first state, then live."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.waiting: list[bytes] | None = []  # None once its first state went out
        self.dropped = False


class Stream:
    """Fans the lab's messages out to its subscribers, in order, from the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, behind_limit: int = BEHIND_LIMIT) -> None:
        self.loop = loop
        self.behind_limit = behind_limit
        self.subscribers: list[Subscriber] = []
        self.published = 0

    def publish(self, name: str, data: Any) -> None:
        """Send a message to every subscriber; callable from any thread."""
        encoded = line(name, data)  # in the caller's thread: the loop only copies bytes
        with contextlib.suppress(RuntimeError):  # the loop has closed: the lab is stopping
            self.loop.call_soon_threadsafe(self.send, encoded)

    def send(self, encoded: bytes) -> None:
        """Write one encoded line to every subscriber (on the loop)."""
        self.published += 1
        for subscriber in list(self.subscribers):
            if subscriber.waiting is None:
                self._write(subscriber, encoded)
            elif len(subscriber.waiting) < WAITING_LIMIT:
                subscriber.waiting.append(encoded)
            else:
                self._drop(subscriber, "its first state took too long")

    def subscribe(self, sink: Sink, first_state: Callable[[], dict | None]) -> Subscriber:
        """Add a reader; it gets `first_state()` (read in a worker thread) before anything else."""
        sink.write(HEAD)
        subscriber = Subscriber(sink)
        self.subscribers.append(subscriber)
        reading = self.loop.run_in_executor(None, first_state)
        reading.add_done_callback(lambda done: self._started(subscriber, done))
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)

    def _started(self, subscriber: Subscriber, reading: asyncio.Future) -> None:
        if subscriber.dropped or subscriber not in self.subscribers:
            return
        state = None if reading.cancelled() or reading.exception() else reading.result()
        if state is None:  # the lab cannot describe itself now: the reader retries
            self._drop(subscriber, "the lab could not describe itself")
            return
        waiting, subscriber.waiting = subscriber.waiting or [], None
        self._write(subscriber, line("state", state))
        for encoded in waiting:
            self._write(subscriber, encoded)

    def _write(self, subscriber: Subscriber, encoded: bytes) -> None:
        if subscriber.dropped:
            return
        if subscriber.sink.get_write_buffer_size() > self.behind_limit:
            self._drop(subscriber, "it fell too far behind")
            return
        subscriber.sink.write(encoded)

    def _drop(self, subscriber: Subscriber, why: str) -> None:
        log.warning("dropped a stream subscriber: %s", why)
        subscriber.dropped = True
        self.unsubscribe(subscriber)
        subscriber.sink.close()
