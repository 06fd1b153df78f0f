"""Simulated clients: each its own source address, cookie jar and keep-alive connections.

Client k sends from 127.0.0.(k+1), so ip-hash and source stickiness see N
distinct visitors. Like a browser, a client never pipelines: one request per
connection at a time. With keep-alive on it reuses an idle connection, opens
another when all of its connections are busy (up to `max_connections`: the
browsers' limit per host, or 1 for a client that holds one long-lived
connection as HTTP/2 and gRPC clients do), and past that its requests wait in line, their
latency counting from when they fell due. With keep-alive off every request
gets a fresh connection (under the same cap) and says `Connection: close`.

Every request ends in exactly one of: answered (with its status), or failed
as connect, reset, timeout or bad_response; so in_flight always comes back to 0.
Nothing is retried: a learner who kills a backend should see what broke.
One connection, and the answer read on it, is lab.traffic.connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import Awaitable

from lab.proxy_protocol import encode_v1, encode_v2
from lab.traffic.arrivals import Page
from lab.traffic.connection import REQUEST_TIMEOUT_S, Connection, Job
from lab.traffic.cookies import CookieJar
from lab.traffic.datagrams import DatagramSender
from lab.traffic.settings import MAX_CONNECTIONS, Target
from lab.traffic.stats import TrafficStats
from lab.traffic.tls import ClientContext, client_context

USER_AGENT = b"lb-lab-traffic"


def source_address(index: int) -> str:
    """Client k's own loopback address: c1 is 127.0.0.2, c2 is 127.0.0.3, ..."""
    return f"127.0.0.{index + 1}"


class Client:
    """One simulated visitor, `c<index>`."""

    def __init__(
        self,
        index: int,
        target: Target,
        address: tuple[str, int],
        stats: TrafficStats,
        *,
        keep_alive: bool = True,
        bind_source: bool = True,
        protocol: str = "http",
        udp_session: int = 5,
        proxy: str = "",
        ca_pem: str | None = None,
    ) -> None:
        self.name = f"c{index}"
        # "v1" or "v2": rather than bind its address, the client names it in a PROXY header
        # at the start of each connection, as a proxy in front of the balancer would.
        self.proxy = proxy
        self.claimed = source_address(index)  # who the balancer should think it is
        self.source = source_address(index) if bind_source and not proxy else None
        self.address = address  # the target, resolved once
        self.stats = stats
        self.keep_alive = keep_alive
        self.max_connections = MAX_CONNECTIONS
        self.jar = CookieJar()
        self.retired = False  # no new work; connections close as they come free
        self.connections: set[Connection] = set()  # open or opening
        self.idle: list[Connection] = []
        self.waiting: deque[Job] = deque()
        self.loop = asyncio.get_running_loop()
        self.protocol = protocol
        self.datagrams = DatagramSender(self.name, self.source, address, stats, udp_session)
        self._prefix = target.prefix.encode()
        self.target = target
        # HTTPS (lab.traffic.tls): off until `set_tls`; the context is made when first needed.
        self.ca_pem = ca_pem
        self.tls = False
        self.server_name: str | None = None  # the SNI name this client asks for
        self.context: ClientContext | None = None
        self.resume = True
        self._fixed = self._fixed_lines()

    def _fixed_lines(self) -> bytes:
        # A browser at https://shop.lab.test:PORT/ names the same site in Host as in its SNI.
        host = self.target.authority
        if self.tls and self.server_name:
            host = f"{self.server_name}:{self.target.port}"
        return b"Host: %s\r\nUser-Agent: %s\r\nX-Lab-Client: %s\r\nAccept: */*\r\n" % (
            host.encode(),
            USER_AGENT,
            self.name.encode(),
        )

    def set_tls(self, on: bool, server_name: str | None, resume: bool) -> None:
        """Speak HTTPS (or not) from the next connection on, asking for `server_name`."""
        if on and self.ca_pem is None:
            raise ValueError("HTTPS needs the CA file to verify against")
        changed = (on, server_name) != (self.tls, self.server_name)
        self.tls, self.server_name, self.resume = on, server_name, resume
        if on and self.context is None:
            self.context = client_context(self.ca_pem or "", resume)
        if self.context is not None:
            self.context.resume = resume
            if changed or not resume:
                self.context.session = None  # a session is for one name; off: none kept
        self._fixed = self._fixed_lines()
        if changed:
            self._close_idle()  # they speak the old way; the next request opens a new one

    # -- taking work

    def submit(self, job: Job) -> None:
        self.stats.started()
        if self.protocol == "udp":
            self.datagrams.send(job)
        else:
            self._dispatch(job)

    def _dispatch(self, job: Job) -> None:
        if self.idle:
            self.idle.pop().send(job)  # the most recently used: the least likely to be stale
        elif len(self.connections) < self.max_connections:
            self._open(job)
        else:
            self.waiting.append(job)

    def request_bytes(self, page: Page) -> bytes:
        head = [b"%s %s%s HTTP/1.1\r\n" % (page.method.encode(), self._prefix, page.path.encode())]
        head.append(self._fixed)
        cookie = self.jar.header()
        if cookie:
            head.append(b"Cookie: " + cookie + b"\r\n")
        if page.body:
            head.append(b"Content-Type: application/x-www-form-urlencoded\r\n")
            head.append(b"Content-Length: %d\r\n" % len(page.body))
        if not self.keep_alive:
            head.append(b"Connection: close\r\n")
        head += (b"\r\n", page.body)
        return b"".join(head)

    # -- connections

    def _open(self, job: Job) -> None:
        connection = Connection(self)
        self.connections.add(connection)
        connection.task = self.loop.create_task(self._connect(connection, job))

    async def _connect(self, connection: Connection, job: Job) -> None:
        host, port = self.address
        local = (self.source, 0) if self.source else None
        left = job.due + REQUEST_TIMEOUT_S - self.loop.time()
        tls: dict = {}
        if self.tls:  # verified against the CA, for the name this client asks for
            tls = {"ssl": self.context, "server_hostname": self.server_name or self.target.host}
        connecting: Awaitable[object]
        if tls and self.proxy:  # the PROXY header goes first, before the TLS handshake
            connecting = self._proxied_tls(connection, tls)
        else:
            connecting = self.loop.create_connection(
                lambda: connection, host, port, local_addr=local, **tls
            )
        try:
            await asyncio.wait_for(connecting, max(left, 0.001))
        except (OSError, TimeoutError) as exc:
            self.connections.discard(connection)
            self.stats.failed_with(_failure(exc))
            self._fill()
            return
        finally:
            connection.task = None
        if connection.closed:  # the server hung up at once; connection_lost has already counted it
            self.stats.failed_with("reset")
            return
        connection.send(job)

    async def _proxied_tls(self, connection: Connection, tls: dict) -> None:
        """Connect, say who we are in a PROXY header on the bare socket, then start TLS on it."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await self.loop.sock_connect(sock, self.address)
            await self.loop.sock_sendall(sock, self.proxy_header(sock.getsockname()[1]))
            connection.header_sent = True
            await self.loop.create_connection(lambda: connection, sock=sock, **tls)
        except BaseException:
            sock.close()
            raise

    def proxy_header(self, port: int) -> bytes:
        encode = encode_v2 if self.proxy == "v2" else encode_v1
        return encode((self.claimed, port), self.address)

    def answered(self, connection: Connection, job: Job, status: int, reusable: bool) -> None:
        now = self.loop.time()
        self.stats.answered(status, (now - job.due) * 1000.0, now)
        if not (reusable and self.keep_alive):
            self._drop(connection)
            return
        job = self._next_waiting()
        if job is not None:
            connection.send(job)
        elif self.retired or len(self.connections) > self.max_connections:
            self._drop(connection)  # retired, or more connections than now allowed
        else:
            self.idle.append(connection)

    def lost(self, connection: Connection, job: Job | None, kind: str) -> None:
        """`connection` is gone; `job` (if any) went with it unanswered."""
        self.connections.discard(connection)
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)
        if job is not None:
            # No retry, unlike a browser: the lab counts every failure a learner should see.
            self.stats.failed_with(kind)
        self._fill()

    def _drop(self, connection: Connection) -> None:
        self.connections.discard(connection)
        connection.close()
        self._fill()

    def _fill(self) -> None:
        """Start waiting requests on new connections while there is room."""
        while self.waiting and len(self.connections) < self.max_connections:
            job = self._next_waiting()
            if job is not None:
                self._open(job)

    def _next_waiting(self) -> Job | None:
        self.expire(self.loop.time())
        return self.waiting.popleft() if self.waiting else None

    def expire(self, now: float) -> None:
        """Fail the requests that waited in line past their timeout."""
        while self.waiting and self.waiting[0].due + REQUEST_TIMEOUT_S <= now:
            self.waiting.popleft()
            self.stats.failed_with("timeout")

    # -- being steered

    def set_max_connections(self, count: int) -> None:
        """Hold at most `count` connections: idle extras close now, busy ones when free."""
        self.max_connections = count
        while self.idle and len(self.connections) > count:
            connection = self.idle.pop(0)  # the least recently used first
            self.connections.discard(connection)
            connection.close()

    def set_keep_alive(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive
        if not keep_alive:
            self._close_idle()

    def retire(self) -> None:
        """Take no new work: close idle connections now, busy ones when their answer is in."""
        self.retired = True
        self._close_idle()
        self.datagrams.close()

    def abort(self) -> None:
        """Shut everything at once (the generator is stopping)."""
        self.retired = True
        self.datagrams.close()
        for connection in list(self.connections):
            connection.abort()
        self.connections.clear()
        self.idle.clear()
        self.waiting.clear()

    def _close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            self.connections.discard(connection)
            connection.close()


def _failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "handshake" if isinstance(exc, ssl.SSLError) else "connect"
