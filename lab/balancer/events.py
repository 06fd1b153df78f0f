"""The event stream: every routing decision, as newline-delimited JSON, to whoever listens.

The data plane never waits on an observer. Each subscriber has a bounded
queue; when a reader is slow and its queue is full, new events are dropped and
counted, and the reader is told how many it missed once it catches up.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from json.encoder import encode_basestring
from typing import Final, Protocol

from lab.vocabulary.events import DROPPED

QUEUE_LIMIT: Final = 10_000  # events per subscriber before we start dropping
FLUSH_EVERY_S: Final = 0.01  # batch serialisation: one write per subscriber per 10 ms
WRITE_BUFFER_LIMIT: Final = 256 * 1024  # bytes unsent to a reader before we stop writing to it
# Kernel send buffer for an event stream: small, so a stuck reader shows up as unsent
# bytes here (and then as dropped events) instead of megabytes hidden in the kernel.
SOCKET_SEND_BUFFER: Final = 64 * 1024

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class JsonTexts:
    """JSON string literals of texts that come back again and again: reasons and paths.

    Round robin's reasons, and most paths, are the same few strings for every
    request. Escaping one is cheap, but looking it up is cheaper still; the table
    starts afresh when it fills, so a stream of unique texts costs little more.
    """

    def __init__(self, limit: int = 1024) -> None:
        self.known: dict[str, str] = {}
        self.limit = limit

    def of(self, text: str) -> str:
        literal = self.known.get(text)
        if literal is None:
            if len(self.known) >= self.limit:
                self.known = {}
            literal = self.known[text] = encode_basestring(text)
        return literal


class Sink(Protocol):
    """Where a subscriber's bytes go (an asyncio transport, or a list in tests)."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...


class Subscriber:
    def __init__(self, sink: Sink, limit: int) -> None:
        self.sink = sink
        self.queue: deque[str] = deque()  # events already encoded as JSON text
        self.limit = limit
        self.dropped = 0  # not yet reported to this reader
        self.dropped_total = 0


class EventBus:
    """Fan events out to subscribers without ever blocking the publisher.

    Publishing appends the line to one shared batch; the flush, every 10 ms, hands
    the batch to each subscriber's queue (dropping what does not fit) and writes.
    The queues fill in the same order either way, so a reader keeps and loses the
    same events as it would if each line went straight to every queue.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, limit: int = QUEUE_LIMIT):
        self.loop = loop
        self.limit = limit
        self.subscribers: list[Subscriber] = []
        # True when someone reads events; callers skip building them otherwise. A plain
        # attribute, kept by (un)subscribe, because the hot path asks twice per request.
        self.listening = False
        self.pending: list[str] = []  # published since the last flush, not yet queued
        self.dropped = 0
        self._handed_out = 0  # published before the current batch
        self._flush_handle: asyncio.TimerHandle | None = None

    @property
    def published(self) -> int:
        return self._handed_out + len(self.pending)

    def subscribe(self, sink: Sink) -> Subscriber:
        self._hand_out()  # a new reader gets only what is published from now on
        subscriber = Subscriber(sink, self.limit)
        self.subscribers.append(subscriber)
        self.listening = True
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)
        self.listening = bool(self.subscribers)

    def publish(self, event: dict) -> None:
        self.publish_encoded(_encode(event))

    def publish_encoded(self, line: str) -> None:
        """Publish an event already encoded as one line of JSON (the per-request hot path)."""
        if not self.listening:
            self._handed_out += 1  # counted, and kept nowhere
            return
        self.pending.append(line)
        if self._flush_handle is None:
            loop = self.loop or asyncio.get_running_loop()
            self._flush_handle = loop.call_later(FLUSH_EVERY_S, self.flush)

    def _hand_out(self) -> None:
        """Move the batch into every subscriber's queue, up to its limit; count the rest."""
        batch = self.pending
        if not batch:
            return
        self.pending = []
        self._handed_out += len(batch)
        for subscriber in self.subscribers:
            room = subscriber.limit - len(subscriber.queue)
            if room >= len(batch):
                subscriber.queue.extend(batch)
                continue
            kept = max(room, 0)
            subscriber.queue.extend(batch[:kept])
            lost = len(batch) - kept
            subscriber.dropped += lost
            subscriber.dropped_total += lost
            self.dropped += lost

    def flush(self) -> None:
        """Write what each subscriber can take now; keep the rest queued (bounded)."""
        self._flush_handle = None
        self._hand_out()
        pending = False
        for subscriber in self.subscribers:
            if not subscriber.queue and not subscriber.dropped:
                continue
            if subscriber.sink.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                pending = True  # a slow reader: let its queue fill and drop, never wait
                continue
            lines = list(subscriber.queue)
            subscriber.queue.clear()
            if subscriber.dropped:
                lines.append(_encode({"type": DROPPED, "count": subscriber.dropped}))
                subscriber.dropped = 0
            lines.append("")
            subscriber.sink.write("\n".join(lines).encode())
        if pending and self._flush_handle is None:
            loop = self.loop or asyncio.get_running_loop()
            self._flush_handle = loop.call_later(FLUSH_EVERY_S * 10, self.flush)
