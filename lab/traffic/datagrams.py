"""A simulated client's UDP side: datagrams from its own address, in sessions of source ports.

The balancer knows a UDP flow only by the client's address and port, so the
source port is the whole story. A client sends `session` datagrams from one
source port, then opens a fresh port for the next ones (session 1: a fresh
port for every datagram; 0: one port for as long as the client lives).

Each datagram says who sent it and its number ("c2 17"); the toy backends quote
it back ("got"), so a reply is matched to its datagram even when replies are lost
or come out of order. A datagram with no reply in REPLY_TIMEOUT_S fails as a
timeout; UDP never says more than that.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import TYPE_CHECKING

from lab.traffic.stats import TrafficStats

if TYPE_CHECKING:
    from lab.traffic.connection import Job

REPLY_TIMEOUT_S = 3.0
RECEIVE_BYTES = 65_536


class Session:
    """One source port: a connected UDP socket and the datagrams awaiting replies on it."""

    def __init__(self, sender: DatagramSender) -> None:
        self.sender = sender
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        try:
            self.sock.bind((sender.source or "0.0.0.0", 0))
            self.sock.connect(sender.address)  # replies from anywhere else are not ours
        except OSError:
            self.sock.close()
            raise
        self.pending: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self.sent = 0
        self.closed = False
        sender.loop.add_reader(self.sock.fileno(), self._readable)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def send(self, tag: str, due: float) -> None:
        self.sent += 1
        loop = self.sender.loop
        try:
            self.sock.send(tag.encode())
        except OSError:  # the balancer's port refused (ICMP), or the buffer is full
            self.sender.stats.failed_with("connect")
            return
        timer = loop.call_at(due + REPLY_TIMEOUT_S, self._timed_out, tag)
        self.pending[tag] = (due, timer)

    def _readable(self) -> None:
        while not self.closed:
            try:
                data = self.sock.recv(RECEIVE_BYTES)
            except BlockingIOError:
                return
            except OSError:
                continue  # ICMP for an earlier datagram: its timer counts it
            self._reply(data)

    def _reply(self, data: bytes) -> None:
        try:
            tag = json.loads(data)["got"]
        except (ValueError, KeyError, TypeError):
            return  # not an answer to anything we sent
        entry = self.pending.pop(tag, None)
        if entry is None:
            return  # late: its timeout has already counted it
        due, timer = entry
        timer.cancel()
        now = self.sender.loop.time()
        self.sender.stats.replied((now - due) * 1000.0, now)
        self.sender.settle(self)

    def _timed_out(self, tag: str) -> None:
        if self.pending.pop(tag, None) is not None:
            self.sender.stats.failed_with("timeout")
            self.sender.settle(self)

    def close(self) -> None:
        """Stop listening; datagrams still waiting count as failed (the client is going)."""
        if self.closed:
            return
        self.closed = True
        self.sender.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for _, timer in self.pending.values():
            timer.cancel()
            self.sender.stats.failed_with("timeout")
        self.pending.clear()


class DatagramSender:
    """A client's datagrams: the current session and the old ones still awaiting replies."""

    def __init__(
        self,
        name: str,
        source: str | None,
        address: tuple[str, int],
        stats: TrafficStats,
        session: int,
    ) -> None:
        self.name = name
        self.source = source
        self.address = address
        self.stats = stats
        self.session = session  # datagrams per source port; 0 = keep the port
        self.loop = asyncio.get_running_loop()
        self.current: Session | None = None
        self.finishing: set[Session] = set()
        self.count = 0

    def send(self, job: Job) -> None:
        """One datagram (a job fell due), on the current source port or a fresh one."""
        current = self.current
        if current is not None and self.session and current.sent >= self.session:
            self._retire(current)
            current = None
        if current is None:
            try:
                current = self.current = Session(self)
            except OSError:
                self.stats.failed_with("connect")
                return
        self.count += 1
        current.send(f"{self.name} {self.count}", job.due)

    def settle(self, session: Session) -> None:
        """A datagram of `session` was answered or timed out; an old session may now close."""
        if session in self.finishing and not session.pending:
            self.finishing.discard(session)
            session.close()

    def _retire(self, session: Session) -> None:
        if session.pending:
            self.finishing.add(session)  # its replies may still come
        else:
            session.close()
        self.current = None

    def set_session(self, session: int) -> None:
        self.session = session

    @property
    def ports(self) -> int:
        return int(self.current is not None) + len(self.finishing)

    def close(self) -> None:
        for session in [*self.finishing, *([self.current] if self.current else [])]:
            session.close()
        self.finishing.clear()
        self.current = None
