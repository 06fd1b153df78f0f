"""The benchmark's own UDP load tool: request/response datagrams over many flows, closed loop.

wrk, hey and the builtin HTTP load generator speak TCP only, so UDP gets a tool
of its own. Each flow is one connected socket (its own source port, so the
balancer sees its own flow), with one datagram outstanding at a time: send,
wait for the reply, send the next. That is request/response, as a DNS client
or a game's input loop, and it measures what the proxy turns around per
second with `flows` conversations in flight.

One thread drives every socket through epoll. A datagram whose reply has not
come after LOST_S is counted lost and the flow sends a fresh one, so one lost
reply never stalls a flow for the rest of the run. Replies are matched to the
flow's latest datagram by a sequence number the toy backends quote back
(`got`), so a late reply to a lost datagram is not counted twice.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from dataclasses import dataclass, field

from lab.bench.runner import cpu_seconds

LOST_S = 1.0
RECEIVE_BYTES = 2048


@dataclass
class UdpRun:
    """What one run saw."""

    flows: int
    seconds: float
    replies: int = 0
    lost: int = 0
    rtts_ms: list[float] = field(default_factory=list)
    cpu_s: float | None = None  # the proxy's CPU time (user + system) during the run

    @property
    def per_second(self) -> float:
        return self.replies / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float | None:
        """The proxy's CPU microseconds per answered exchange (a datagram up, its reply down)."""
        if self.cpu_s is None or not self.replies:
            return None
        return self.cpu_s * 1e6 / self.replies

    def percentile(self, fraction: float) -> float | None:
        if not self.rtts_ms:
            return None
        ordered = sorted(self.rtts_ms)
        return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


class _Flow:
    __slots__ = ("sock", "seq", "sent_at")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seq = 0
        self.sent_at = 0.0

    def send(self) -> None:
        self.seq += 1
        self.sent_at = time.perf_counter()
        self.sock.send(b"%d" % self.seq)


def open_flows(target: tuple[str, int], count: int, sources: int = 50) -> list[socket.socket]:
    """`count` connected UDP sockets, spread over `sources` loopback addresses (127.0.1.x),
    each on its own port: `count` flows to the balancer."""
    socks = []
    try:
        for i in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.bind((f"127.0.1.{i % sources + 1}", 0))
            sock.connect(target)
            sock.setblocking(False)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


def run_load(
    target: tuple[str, int], flows: int, seconds: float, warmup: float = 0.3, pid: int | None = None
) -> UdpRun:
    """Keep `flows` request/response conversations going for `seconds`; count the replies.

    With `pid`, the proxy process's CPU time over the same `seconds` (warm-up left out) is
    recorded too (/proc counts in 10 ms ticks: a run of seconds is needed).
    """
    socks = open_flows(target, flows)
    by_fd = {sock.fileno(): _Flow(sock) for sock in socks}
    poller = select.epoll()
    try:
        for fd in by_fd:
            poller.register(fd, select.EPOLLIN)
        for flow in by_fd.values():
            flow.send()
        _drive(poller, by_fd, time.perf_counter() + warmup, None)  # flows open, caches warm
        result = UdpRun(flows, seconds)
        before = cpu_seconds(pid)
        _drive(poller, by_fd, time.perf_counter() + seconds, result)
        after = cpu_seconds(pid)
        if before is not None and after is not None:
            result.cpu_s = after - before
        return result
    finally:
        poller.close()
        for sock in socks:
            sock.close()


def _drive(poller: select.epoll, by_fd: dict[int, _Flow], until: float, run: UdpRun | None) -> None:
    next_sweep = time.perf_counter() + LOST_S / 4
    while True:
        now = time.perf_counter()
        if now >= until:
            return
        for fd, _ in poller.poll(min(until - now, LOST_S / 4)):
            flow = by_fd[fd]
            try:
                data = flow.sock.recv(RECEIVE_BYTES)
            except OSError:  # ICMP for an earlier datagram: the sweep resends
                continue
            if not _answers(data, flow.seq):
                continue  # a late reply to a datagram already counted lost
            if run is not None:
                run.replies += 1
                run.rtts_ms.append((time.perf_counter() - flow.sent_at) * 1000.0)
            flow.send()
        now = time.perf_counter()
        if now >= next_sweep:
            next_sweep = now + LOST_S / 4
            for flow in by_fd.values():
                if now - flow.sent_at > LOST_S:
                    if run is not None:
                        run.lost += 1
                    flow.send()


def _answers(data: bytes, seq: int) -> bool:
    try:
        return json.loads(data).get("got") == str(seq)
    except (ValueError, AttributeError):
        return False


def hold_flows(target: tuple[str, int], count: int, timeout: float = 30.0) -> list[socket.socket]:
    """Open `count` flows through the balancer, each answered once, and keep them open
    (the caller closes them): the balancer now holds `count` live flows.

    A burst of new flows overflows a listener's receive buffer, and the kernel drops
    what does not fit: a flow still unanswered after LOST_S sends again.
    """
    socks = open_flows(target, count)
    waiting = {sock.fileno(): sock for sock in socks}
    poller = select.epoll()
    try:
        for sock in socks:
            poller.register(sock.fileno(), select.EPOLLIN)
            sock.send(b"hold")
        deadline = time.monotonic() + timeout
        resend = time.monotonic() + LOST_S
        while waiting and time.monotonic() < deadline:
            for fd, _ in poller.poll(0.1):
                sock = waiting.pop(fd, None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.recv(RECEIVE_BYTES)
            if waiting and time.monotonic() >= resend:
                resend = time.monotonic() + LOST_S
                for sock in waiting.values():
                    sock.send(b"hold")
    finally:
        poller.close()
    if waiting:
        for sock in socks:
            sock.close()
        raise TimeoutError(f"{len(waiting)} of {count} flows got no reply")
    return socks
