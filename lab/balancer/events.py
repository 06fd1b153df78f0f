"""The event stream: every routing decision, as newline-delimited JSON, to whoever listens.

The data plane never waits on an observer. Each subscriber has a bounded
queue; when a reader is slow and its queue is full, new events are dropped and
counted, and the reader is told how many it missed once it catches up.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Protocol

QUEUE_LIMIT = 10_000  # events per subscriber before we start dropping
FLUSH_EVERY_S = 0.01  # batch serialisation: one write per subscriber per 10 ms
WRITE_BUFFER_LIMIT = 256 * 1024  # bytes unsent to a reader before we stop writing to it
# Kernel send buffer for an event stream: small, so a stuck reader shows up as unsent
# bytes here (and then as dropped events) instead of megabytes hidden in the kernel.
SOCKET_SEND_BUFFER = 64 * 1024

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


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
    """Fan events out to subscribers without ever blocking the publisher."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, limit: int = QUEUE_LIMIT):
        self.loop = loop
        self.limit = limit
        self.subscribers: list[Subscriber] = []
        self.published = 0
        self.dropped = 0
        self._flush_handle: asyncio.TimerHandle | None = None

    @property
    def listening(self) -> bool:
        """True when someone reads events; callers skip building them otherwise."""
        return bool(self.subscribers)

    def subscribe(self, sink: Sink) -> Subscriber:
        subscriber = Subscriber(sink, self.limit)
        self.subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)

    def publish(self, event: dict) -> None:
        self.publish_encoded(_encode(event))

    def publish_encoded(self, line: str) -> None:
        """Publish an event already encoded as one line of JSON (the per-request hot path)."""
        self.published += 1
        for subscriber in self.subscribers:
            if len(subscriber.queue) >= subscriber.limit:
                subscriber.dropped += 1
                subscriber.dropped_total += 1
                self.dropped += 1
            else:
                subscriber.queue.append(line)
        if self._flush_handle is None and self.subscribers:
            loop = self.loop or asyncio.get_running_loop()
            self._flush_handle = loop.call_later(FLUSH_EVERY_S, self.flush)

    def flush(self) -> None:
        """Write what each subscriber can take now; keep the rest queued (bounded)."""
        self._flush_handle = None
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
                lines.append(_encode({"type": "dropped", "count": subscriber.dropped}))
                subscriber.dropped = 0
            lines.append("")
            subscriber.sink.write("\n".join(lines).encode())
        if pending and self._flush_handle is None:
            loop = self.loop or asyncio.get_running_loop()
            self._flush_handle = loop.call_later(FLUSH_EVERY_S * 10, self.flush)
