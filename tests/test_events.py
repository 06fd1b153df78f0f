"""The event stream never slows the data plane: bounded queues, dropped events counted."""

import asyncio
import json

from lab.balancer import events
from lab.balancer.events import EventBus


class FakeSink:
    def __init__(self, buffered: int = 0) -> None:
        self.chunks: list[bytes] = []
        self.buffered = buffered

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in b"".join(self.chunks).splitlines()]


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


def test_nobody_listening_means_nothing_is_kept():
    bus = EventBus(loop=asyncio.new_event_loop())
    assert not bus.listening
    bus.publish({"type": "route"})
    assert bus.published == 1 and bus.dropped == 0


def test_events_arrive_in_order_as_ndjson():
    async def scenario():
        bus = EventBus()
        sink = FakeSink()
        bus.subscribe(sink)
        for i in range(5):
            bus.publish({"type": "route", "id": f"r{i}"})
        bus.flush()
        return sink.lines()

    assert [e["id"] for e in run(scenario())] == ["r0", "r1", "r2", "r3", "r4"]


def test_a_stuck_reader_loses_events_and_is_told_how_many():
    async def scenario():
        bus = EventBus(limit=10)
        stuck = FakeSink(buffered=events.WRITE_BUFFER_LIMIT + 1)
        healthy = FakeSink()
        bus.subscribe(stuck)
        bus.subscribe(healthy)
        for i in range(25):
            bus.publish({"type": "route", "id": f"r{i}"})
            bus.flush()
        assert stuck.chunks == []  # nothing written while its buffer is full
        assert len(healthy.lines()) == 25  # the healthy reader is unaffected
        assert bus.dropped == 15
        stuck.buffered = 0  # it catches up
        bus.flush()
        return stuck.lines()

    lines = run(scenario())
    assert [e["id"] for e in lines[:-1]] == [f"r{i}" for i in range(10)]
    assert lines[-1] == {"type": "dropped", "count": 15}


def test_a_new_reader_gets_only_what_is_published_after_it_joins():
    async def scenario():
        bus = EventBus()
        early = FakeSink()
        bus.subscribe(early)
        bus.publish({"type": "route", "id": "r1"})
        late = FakeSink()
        bus.subscribe(late)  # before the flush that writes r1
        bus.publish({"type": "route", "id": "r2"})
        bus.flush()
        return early.lines(), late.lines(), bus.published

    early, late, published = run(scenario())
    assert [e["id"] for e in early] == ["r1", "r2"]
    assert [e["id"] for e in late] == ["r2"]
    assert published == 2


def test_unsubscribed_reader_gets_nothing_more():
    async def scenario():
        bus = EventBus()
        sink = FakeSink()
        subscriber = bus.subscribe(sink)
        bus.unsubscribe(subscriber)
        bus.publish({"type": "route"})
        bus.flush()
        return sink.chunks, bus.listening

    assert run(scenario()) == ([], False)
