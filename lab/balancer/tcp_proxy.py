"""Layer 4: a TCP proxy that makes one routing decision per connection.

It sees only addresses and bytes. Whatever a client sends on one connection,
every request in it goes to the backend chosen when the connection opened:
the classic difference from Layer 7.

With tls.mode = "passthrough" it reads one thing more before choosing: the TLS
ClientHello, in the clear, for its server name (SNI). It never decrypts and holds
no key: the hello goes on to the backend as it came, and so does everything after
it, so the client's TLS session is with the backend itself. That step is
lab.balancer.passthrough.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

from lab.balancer.algorithms import Decision, RequestInfo
from lab.balancer.backend import Backend
from lab.balancer.balancer import Balancer
from lab.balancer.client_hello import ClientHello, HelloReader
from lab.balancer.event_text import passthrough_tls
from lab.balancer.passthrough import await_hello, read_hello, refuse_hello
from lab.balancer.pool import Pool
from lab.balancer.rules import Rule
from lab.proxy_protocol import HeaderReader, ProxyError, encode_v1, encode_v2


class TcpUpstream(asyncio.Protocol):
    """The balancer's connection to the chosen backend; pipes bytes back to the client."""

    def __init__(self, client: TcpClientConnection) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        client = self.client
        if not client.sent:
            # Time to the backend's first byte: the closest thing to a response time at L4.
            client.first_byte_ms = (perf_counter() - client.started) * 1000.0
        client.sent += len(data)
        client.transport.write(data)

    def eof_received(self) -> bool:
        self.client.upstream_eof()
        return True  # keep our write side: the client may still be sending

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.upstream_closed(exc)

    def pause_writing(self) -> None:
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client.transport.resume_reading()


class TcpClientConnection(asyncio.Protocol):
    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.upstream: TcpUpstream | None = None
        self.backend: Backend | None = None
        self.tried: list = []
        self.info: RequestInfo | None = None
        self.id = ""
        self.started = 0.0
        self.sent = 0  # bytes to the client
        self.received = 0  # bytes from the client
        self.first_byte_ms: float | None = None
        self.early: list[bytes] = []  # client bytes that came before the backend connection
        self.client_eof = False  # the client sent FIN
        self.backend_eof = False  # the backend sent FIN
        self.finished = False
        # Who connected to whom: from the socket, or from a PROXY header (proxy_protocol).
        self.client: tuple[str, int] = ("unknown", 0)
        # Our own address is asked of the socket only when a PROXY header to a backend
        # needs it (proxy_line): formatting an address costs about 2k instructions.
        self.local: tuple[str, int] | None = None
        self.awaiting_proxy = False
        # Made only with proxy_protocol.accept: most connections never read a header.
        self.proxy_reader: HeaderReader | None = None
        # Covers the PROXY header and the ClientHello: timeouts.client_header_ms in all.
        self.header_timer: asyncio.TimerHandle | None = None
        self.header_deadline = 0.0  # loop time
        # tls.mode = "passthrough": the hello being read, then what it said.
        self.hello_reader: HelloReader | None = None
        self.hello: ClientHello | None = None
        self.pool: Pool = balancer.default_pool
        self.rule: Rule | None = None
        self.why_pool = ""  # how the SNI chose the pool, for the reason
        self.connect_timer: asyncio.TimerHandle | None = None  # timeouts.connect_ms
        self.connect_timed_out = False  # set by connect_late, read by connect

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.client = (peer[0], peer[1])
        self.id = self.balancer.next_id()
        self.started = perf_counter()
        balancer = self.balancer
        if balancer.proxy_accept:
            if not balancer.proxy_trusted.trusts(self.client[0]):
                self.refuse_proxy(
                    f"a PROXY header is believed only from proxy_protocol.trusted, "
                    f"and {self.client[0]} is not in it"
                )
                return
            # Read on until the header is in: it names the client to route by.
            self.awaiting_proxy = True
            self.proxy_reader = HeaderReader()
            self.header_deadline = self.loop.time() + balancer.client_header_s
            self.header_timer = self.loop.call_at(
                self.header_deadline, self.refuse_proxy, "no complete PROXY header in time"
            )
            return
        if balancer.passthrough:
            self.header_deadline = self.loop.time() + balancer.client_header_s
            await_hello(self)
            return
        self.transport.pause_reading()  # nothing to pipe to until the backend answers
        self.info = RequestInfo(self.client[0])
        self.route()

    def proxy_header(self, data: bytes) -> bytes:
        """Read the PROXY header, then route by the client it names; returns what follows."""
        reader = self.proxy_reader
        assert reader is not None  # made with awaiting_proxy
        try:
            header, rest = reader.feed(data)
        except ProxyError as exc:
            self.refuse_proxy(f"{exc} (from {self.client[0]})")
            return b""
        if header is None:
            return b""
        self.awaiting_proxy = False
        if self.header_timer is not None:
            self.header_timer.cancel()
        if header.source is not None and header.destination is not None:
            self.client, self.local = header.source, header.destination
        if self.balancer.passthrough:
            await_hello(self)  # what follows the header starts the ClientHello
            return rest
        self.transport.pause_reading()
        self.info = RequestInfo(self.client[0])
        self.route()
        return rest

    def refuse_proxy(self, reason: str) -> None:
        if self.finished:
            return
        self.awaiting_proxy = False
        self.balancer.publish_error(self.id, None, reason, kind="proxy_protocol")
        self.finished = True
        self.transport.close()

    def proxy_line(self) -> bytes:
        """The PROXY header for the backend (proxy_protocol.send), as HAProxy's send-proxy."""
        if self.local is None:
            here = self.transport.get_extra_info("sockname")
            self.local = (here[0], here[1]) if here else ("unknown", 0)
        try:
            if self.balancer.proxy_send == "v2":
                return encode_v2(self.client, self.local)
            return encode_v1(self.client, self.local)
        except ValueError:  # not an IP address pair: say so, as the protocol allows
            return b"PROXY UNKNOWN\r\n"

    def route(self, waited_ms: float = 0.0) -> None:
        balancer = self.balancer
        outcome = balancer.route(self.info, self.tried, self.pool)
        if not isinstance(outcome, Decision):
            if outcome.can_wait and balancer.queue.join(self.pool, self, outcome.reason):
                return  # reading stays paused until a slot frees up
            # At Layer 4 "failed" can only mean the connection was refused, so say that.
            self.give_up(
                "every backend refused the connection" if outcome.tried_all else outcome.reason
            )
            return
        if waited_ms:
            outcome.reason = f"waited {waited_ms:.0f} ms for a free slot; {outcome.reason}"
        if self.why_pool:
            outcome.reason = f"{self.why_pool}; {outcome.reason}"
        self.backend = outcome.backend
        hello = self.hello
        balancer.publish_route(
            self.id,
            self.info,
            outcome,
            len(self.tried),
            self.pool,
            self.rule,
            passthrough_tls(hello) if hello is not None and balancer.events.listening else "",
        )
        self.start_connect(outcome.backend)

    def resume_routing(self, waited_ms: float) -> None:
        self.route(waited_ms)

    def give_up(self, reason: str) -> None:
        """No backend: at Layer 4 the only way to say so is to close the connection."""
        self.balancer.publish_error(self.id, None, reason, kind="refused")
        self.finished = True
        self.transport.close()

    def start_connect(self, backend: Backend) -> None:
        """Connect to `backend` within timeouts.connect_ms.

        One task and a timer that cancels it, rather than asyncio.wait_for, which wraps
        the connect in a second task with its own future, timer and callbacks: about
        16k instructions a connection more (callgrind), for the same bound."""
        task = self.loop.create_task(self.connect(backend))
        self.connect_timer = self.loop.call_later(self.balancer.connect_s, self.connect_late, task)

    def connect_late(self, task: asyncio.Task) -> None:
        self.connect_timer = None
        self.connect_timed_out = True
        task.cancel()

    async def connect(self, backend: Backend) -> None:
        try:
            _, upstream = await self.loop.create_connection(
                lambda: TcpUpstream(self), backend.host, backend.port
            )
        except (asyncio.CancelledError, OSError) as exc:
            timed_out = self.connect_timed_out
            if isinstance(exc, asyncio.CancelledError) and not timed_out:
                raise  # cancelled from outside (shutting down), not by connect_late
            self.connect_timed_out = False
            if self.connect_timer is not None:
                self.connect_timer.cancel()
                self.connect_timer = None
            if self.finished:
                return
            why = (
                f"did not accept the connection within "
                f"{self.balancer.config.timeouts.connect_ms} ms"
                if timed_out
                else "refused the connection"
            )
            self.balancer.release(backend, None, failed=True, why=why)
            self.tried.append(backend)
            self.backend = None
            if len(self.tried) >= self.balancer.config.retries.tries:
                self.give_up(f"{backend.name} {why}; {len(self.tried)} tries used")
                return
            self.balancer.publish_error(
                self.id, None, f"{backend.name} {why}; trying another", backend, kind="retry"
            )
            self.route()
            return
        if self.connect_timer is not None:
            self.connect_timer.cancel()
            self.connect_timer = None
        if self.finished:  # the client left while we were connecting
            upstream.transport.close()
            return
        self.upstream = upstream
        if self.balancer.proxy_send != "off":
            upstream.transport.write(self.proxy_line())
        if self.early:
            upstream.transport.write(b"".join(self.early))
            self.early.clear()
        if self.client_eof and upstream.transport.can_write_eof():
            upstream.transport.write_eof()
        self.transport.resume_reading()

    # -- client side -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.awaiting_proxy:
            data = self.proxy_header(data)
            if not data:
                return
        if self.hello_reader is not None:
            read_hello(self, data)
            return
        self.received += len(data)
        if self.upstream is None:
            # uvloop may hand over bytes it read before our pause took effect.
            self.early.append(data)
        else:
            self.upstream.transport.write(data)

    def eof_received(self) -> bool:
        if self.hello_reader is not None:
            got = len(self.hello_reader.buffer)
            refuse_hello(self, f"the client closed after {got} bytes of an unfinished ClientHello")
            return False
        self.client_eof = True  # half-close: pass it on, keep reading the backend's answer
        if self.upstream is not None and self.upstream.transport.can_write_eof():
            self.upstream.transport.write_eof()
        if self.backend_eof:
            self.close_both()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
        if self.upstream is not None:
            self.upstream.transport.close()
        self.finish(failed=False)

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.resume_reading()

    # -- backend side ------------------------------------------------------------------

    def upstream_eof(self) -> None:
        self.backend_eof = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self.client_eof:
            self.close_both()

    def close_both(self) -> None:
        """Both sides said they are done sending: the conversation is over."""
        self.transport.close()
        if self.upstream is not None:
            self.upstream.transport.close()

    def upstream_closed(self, exc: Exception | None) -> None:
        self.transport.close()  # flushes what the backend already sent
        self.finish(failed=exc is not None)
        # Break the cycle with the TcpUpstream (it points back here), so reference counting
        # frees both now; left to the cycle collector, each connection cost ~3k more.
        self.upstream = None

    def finish(self, failed: bool) -> None:
        if self.finished:
            return
        self.finished = True
        if self.backend is None:
            return
        ms = (perf_counter() - self.started) * 1000.0
        self.balancer.release(
            self.backend,
            None if failed else self.first_byte_ms,
            failed=failed,
            why="the connection was reset",
        )
        self.balancer.publish_done(self.id, self.backend, None, ms, self.sent, self.received)
