"""The service's stream without processes: order, a full state first, and slow readers dropped."""

from __future__ import annotations

import asyncio
import json
import threading

from lab.service.stream import HEAD, Stream


class Reader:
    """A subscriber's connection: what was written, and how much it has not read."""

    def __init__(self, unread: int = 0) -> None:
        self.written: list[bytes] = []
        self.unread = unread
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return self.unread

    def close(self) -> None:
        self.closed = True

    def messages(self) -> list[tuple[str, int]]:
        lines = [json.loads(data) for data in self.written if data != HEAD]
        return [(m["name"], m["data"]["n"]) for m in lines]


def test_a_new_reader_gets_a_full_state_first_then_what_came_meanwhile_in_order():
    async def scenario() -> Reader:
        loop = asyncio.get_running_loop()
        stream = Stream(loop)
        described = threading.Event()
        release = threading.Event()

        def first_state() -> dict:  # read in a worker thread while the lab goes on
            described.set()
            release.wait(5)
            return {"n": 0}

        reader = Reader()
        stream.subscribe(reader, first_state)
        await loop.run_in_executor(None, described.wait, 5)
        for n in (1, 2, 3):
            stream.publish("batch", {"n": n})
        await asyncio.sleep(0.05)
        assert reader.written == [HEAD]  # nothing before its state
        release.set()
        while len(reader.written) < 5:
            await asyncio.sleep(0.01)
        stream.publish("state", {"n": 4})
        await asyncio.sleep(0.05)
        return reader

    reader = asyncio.run(scenario())
    assert reader.written[0] == HEAD
    assert reader.messages() == [("state", 0), ("batch", 1), ("batch", 2), ("batch", 3),
                                 ("state", 4)]  # fmt: skip


def test_a_reader_that_falls_behind_is_dropped_and_the_others_go_on():
    async def scenario() -> tuple[Reader, Reader, Stream]:
        loop = asyncio.get_running_loop()
        stream = Stream(loop, behind_limit=1000)
        keeping_up, stuck = Reader(), Reader()
        for reader in (keeping_up, stuck):
            stream.subscribe(reader, lambda: {"n": 0})
        while len(stuck.written) < 2 or len(keeping_up.written) < 2:
            await asyncio.sleep(0.01)
        stream.publish("batch", {"n": 1})
        await asyncio.sleep(0.02)
        stuck.unread = 5000  # it stopped reading: its unsent bytes pile up
        stream.publish("batch", {"n": 2})
        stream.publish("batch", {"n": 3})
        await asyncio.sleep(0.02)
        return keeping_up, stuck, stream

    keeping_up, stuck, stream = asyncio.run(scenario())
    assert keeping_up.messages() == [("state", 0), ("batch", 1), ("batch", 2), ("batch", 3)]
    assert stuck.messages() == [("state", 0), ("batch", 1)]
    assert stuck.closed and not keeping_up.closed
    assert stream.subscribers and all(s.sink is keeping_up for s in stream.subscribers)


def test_a_reader_the_lab_cannot_describe_is_closed_to_retry():
    async def scenario() -> Reader:
        stream = Stream(asyncio.get_running_loop())
        reader = Reader()
        stream.subscribe(reader, lambda: None)
        for _ in range(100):
            if reader.closed:
                break
            await asyncio.sleep(0.01)
        return reader

    reader = asyncio.run(scenario())
    assert reader.closed and reader.messages() == []
