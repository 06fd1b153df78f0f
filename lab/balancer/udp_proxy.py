"""Layer 4 UDP: one datagram listener, a flow per client address and port.

There is no connection to route, so the balancer routes flows. The first
datagram from a client address and port opens a flow: the algorithm picks a
backend and the flow gets its own (connected) socket to it. Later datagrams of
the flow go out on that socket, and whatever the backend sends back on it goes to
the client. A connected socket also means the kernel drops replies from any other
address, and reports an ICMP port-unreachable as ConnectionRefusedError.

With udp.per_datagram every datagram is an exchange of its own, routed on its
own and over at its first reply (nginx's `proxy_responses 1`).

The policy (which flows are idle, which to evict) is the pure FlowTable
(lab.balancer.flows); this module is the thin shell around it.
"""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from time import perf_counter
from typing import Any

from lab.balancer.algorithms import Decision, RequestInfo
from lab.balancer.backend import Backend
from lab.balancer.balancer import Balancer
from lab.balancer.event_text import millis_text
from lab.balancer.flows import ANSWERED, BACKEND_DOWN, IDLE, REFUSED, RESET, Flow, FlowTable

# Datagrams a flow holds while its socket to the backend opens; more are dropped.
PENDING_LIMIT = 64
# A reply is read whole: the largest IPv4 datagram (65,507 bytes) fits.
RECEIVE_BYTES = 65536


class UdpProxy(asyncio.DatagramProtocol):
    """The datagram listener: routes flows, forwards datagrams, ends flows and reports."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.table: FlowTable = balancer.flows
        self.counts: defaultdict[str, int] = balancer.udp_counts
        self.transport: asyncio.DatagramTransport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()

    def error_received(self, exc: Exception) -> None:
        self.counts["listener_errors"] += 1  # e.g. an ICMP error for a reply to a client

    # -- client side ---------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        balancer = self.balancer
        counts = self.counts
        if balancer.mode != "udp":
            counts["dropped_not_udp"] += 1  # the balancer is at another layer right now
            return
        if not data:
            # A zero-length datagram is legal, but there is nothing to forward (and the
            # event loop's sendto would silently skip it): count it, open no flow.
            counts["dropped_empty"] += 1
            return
        if balancer.udp_per_datagram:
            flow = self.open(addr, True)
        else:
            flow = self.table.get(addr)
            if flow is not None:
                trouble = flow.broken or _out_of_service(flow.backend, balancer)
                if trouble:
                    # The flow moves now, on its next datagram: UDP gives no other moment.
                    old = flow.backend
                    self.end(flow, REFUSED if flow.broken else BACKEND_DOWN)
                    flow = self.open(
                        addr, False, f"{old.name}, this flow's backend, {trouble}", old
                    )
            else:
                flow = self.open(addr, False)
        if flow is not None:
            self.forward(flow, data)

    def open(
        self, addr: tuple, single: bool, moved: str = "", left: Backend | None = None
    ) -> Flow | None:
        """Route a new flow (or, per datagram, a `single` exchange) and open its socket.

        `moved` says why the client's flow left backend `left`, which is not chosen again.
        """
        balancer = self.balancer
        rid = balancer.next_id()
        request = RequestInfo(f"{addr[0]}:{addr[1]}")  # hashing keys on address and port
        outcome = balancer.route(request, (left,) if left is not None else ())
        if not isinstance(outcome, Decision):
            self.counts["dropped_no_backend"] += 1
            balancer.publish_error(rid, None, outcome.reason, kind="refused")
            return None
        if moved:
            outcome.reason = f"{moved}, so the flow moves on this datagram; {outcome.reason}"
        flow = Flow(rid, addr, outcome.backend, single, perf_counter())
        for old in self.table.add(flow):
            self.finish(old)
        balancer.publish_route(rid, request, outcome)
        assert self.loop is not None
        self.loop.create_task(self.connect(flow))
        return flow

    async def connect(self, flow: Flow) -> None:
        """Open the flow's connected socket to its backend and watch it for replies.

        A plain socket and a reader callback, not the loop's datagram transport: the
        transport turns every reply's source address into a (host, port) tuple (an
        inet_ntop and a tuple per datagram), which a connected socket never needs, since
        the kernel already drops datagrams from any other address. That was a fifth of
        the balancer's instructions per exchange.
        """
        backend = flow.backend
        loop = self.loop
        assert loop is not None
        try:
            found = await loop.getaddrinfo(backend.host, backend.port, type=socket.SOCK_DGRAM)
            family, kind, proto, _, address = found[0]
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                sock.connect(address)  # UDP: no handshake, it only fixes the peer
            except OSError:
                sock.close()
                raise
        except OSError as exc:  # out of file descriptors, an address that cannot resolve
            # Our trouble, not the backend's: the flow ends, and passive health is not told.
            self.counts["upstream_errors"] += 1
            if not flow.ended:
                flow.broken = f"no socket could be opened to it ({exc.strerror or exc})"
                self.table.remove(flow, REFUSED)
                self.finish(flow)
            return
        if flow.ended:  # evicted or ended while the socket opened
            sock.close()
            return
        flow.upstream = sock
        loop.add_reader(sock.fileno(), self.readable, flow)
        for data in flow.pending:
            self.send_up(flow, sock, data)
        flow.pending.clear()

    def forward(self, flow: Flow, data: bytes) -> None:
        self.table.touch(flow)
        flow.datagrams_up += 1
        flow.bytes_up += len(data)
        flow.backend.datagrams += 1
        self.counts["datagrams_up"] += 1
        flow.sent_at = perf_counter()
        if self.balancer.events.listening:
            self.publish_datagram(flow, "up", len(data), "")
        upstream = flow.upstream
        if upstream is not None:
            self.send_up(flow, upstream, data)
        elif len(flow.pending) < PENDING_LIMIT:
            flow.pending.append(data)
        else:
            self.counts["dropped_pending"] += 1

    def send_up(self, flow: Flow, sock: socket.socket, data: bytes) -> None:
        """One datagram to the backend on the flow's connected socket (`send`, no address)."""
        try:
            sock.send(data)
        except BlockingIOError:
            # The socket's send buffer is full: UDP drops, as the kernel itself would.
            self.counts["dropped_upstream_full"] += 1
        except ConnectionRefusedError:
            # The ICMP port-unreachable of an earlier datagram, reported on this send.
            self.refused(flow)
        except OSError:
            self.counts["upstream_errors"] += 1

    # -- backend side --------------------------------------------------------------------

    def readable(self, flow: Flow) -> None:
        """The flow's socket has a reply, or an error, to read: one datagram per call (the
        loop calls again while more wait, so no extra read ends in EAGAIN)."""
        sock = flow.upstream
        if sock is None:
            return
        try:
            data = sock.recv(RECEIVE_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            if isinstance(exc, ConnectionRefusedError):
                self.refused(flow)
            else:
                self.counts["upstream_errors"] += 1
            # The loop stops watching a socket that reported an error: watch it again,
            # for a reply still on its way.
            assert self.loop is not None
            _unwatch(self.loop, sock.fileno())
            self.loop.add_reader(sock.fileno(), self.readable, flow)
            return
        self.reply(flow, data)

    def reply(self, flow: Flow, data: bytes) -> None:
        if flow.ended:
            return
        # One read of the balancer's clock (the flow table's too) for the latency EWMA and
        # the flow's activity below.
        now = self.balancer.monotonic()
        ms = -1.0
        if flow.sent_at:  # the round trip of the datagram this answers
            ms = (perf_counter() - flow.sent_at) * 1000.0
            flow.backend.observe_latency(ms, now)
            flow.sent_at = 0.0
        flow.datagrams_down += 1
        flow.bytes_down += len(data)
        self.counts["datagrams_down"] += 1
        if self.balancer.events.listening:  # the event's text only when someone reads it
            rtt = f',"ms":{millis_text(ms)}' if ms >= 0.0 else ""
            self.publish_datagram(flow, "down", len(data), rtt)
        assert self.transport is not None
        self.transport.sendto(data, flow.peer)
        if flow.single:
            self.table.remove(flow, ANSWERED)
            self.finish(flow)
        else:
            self.table.touch_at(flow, now)

    def refused(self, flow: Flow) -> None:
        """ICMP port unreachable: nothing listens there. Passive health counts it now;
        the flow's next datagram moves it to another backend."""
        if flow.ended or flow.broken:
            return
        self.counts["refused"] += 1
        flow.broken = "answered with ICMP port unreachable (nothing listens on its UDP port)"
        backend = flow.backend
        backend.failures += 1
        self.balancer.health.saw_failure(backend, "ICMP port unreachable")

    def publish_datagram(self, flow: Flow, way: str, size: int, rtt: str) -> None:
        """One datagram through a flow, for the page to draw; a reply carries its round trip."""
        balancer = self.balancer
        balancer.events.publish_encoded(
            f'{{"type":"datagram","id":"{flow.id}","t":{balancer.event_time()},'
            f'"client":"{flow.client}","backend":"{flow.backend.name}","way":"{way}",'
            f'"bytes":{size}{rtt}}}'
        )

    # -- ending flows --------------------------------------------------------------------

    def tick(self) -> None:
        """A few times a second: flows idle past udp.idle_timeout_ms end (and, after the
        table's bound was lowered, the oldest flows over it are evicted)."""
        for flow in self.table.expire() + self.table.trim():
            self.finish(flow)

    def end(self, flow: Flow, why: str) -> None:
        self.table.remove(flow, why)
        self.finish(flow)

    def end_all(self) -> None:
        for flow in self.table.clear():
            flow.ended = RESET
            self.finish(flow)

    def finish(self, flow: Flow, failure: str = "") -> None:
        """Close the flow's socket, release its backend and publish `done`."""
        sock = flow.upstream
        if sock is not None:
            flow.upstream = None
            loop = self.loop
            if loop is not None and not loop.is_closed():
                _unwatch(loop, sock.fileno())
            sock.close()
        flow.pending.clear()
        balancer = self.balancer
        # Never answered in a whole idle timeout: the backend failed it (nginx counts a
        # UDP session without its expected responses the same way). An evicted flow may
        # simply not have had the time, so it does not count.
        if (
            not failure
            and flow.ended == IDLE
            and not flow.broken
            and flow.datagrams_up
            and not flow.datagrams_down
        ):
            failure = f"a flow got no reply in {balancer.config.udp.idle_timeout_ms} ms"
            self.counts["unanswered"] += 1
        balancer.release(flow.backend, None, failed=bool(failure), why=failure)
        self.counts[f"ended_{flow.ended}"] += 1
        if balancer.events.listening:
            ms = (perf_counter() - flow.started) * 1000.0
            balancer.events.publish_encoded(
                f'{{"type":"done","id":"{flow.id}","t":{balancer.event_time()},'
                f'"backend":"{flow.backend.name}","status":null,"ms":{millis_text(ms)},'
                f'"bytes":{flow.bytes_down},"bytes_up":{flow.bytes_up},'
                f'"datagrams":{flow.datagrams_down},"datagrams_up":{flow.datagrams_up},'
                f'"end":"{flow.ended}"}}'
            )


def _unwatch(loop: Any, fd: int) -> None:
    """loop.remove_reader, its result ignored: typeshed says bool, uvloop returns None, and a
    compiled call would check the declared type."""
    loop.remove_reader(fd)


def _out_of_service(backend: Backend, balancer: Balancer) -> str:
    """Why a live flow may not keep its backend: it is down or gone from the config.

    A draining backend keeps its flows, as it keeps its TCP connections: only new ones
    go elsewhere.
    """
    if balancer.backends.get(backend.name) is not backend:
        return "was removed from the balancer"
    if not backend.healthy:
        return f"is down ({backend.down_reason})" if backend.down_reason else "is down"
    return ""
