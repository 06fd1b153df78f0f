"""One client connection: it carries one request at a time and reads the answer with httptools.

A Client (lab.traffic.clients) opens these and hands each a Job; the
connection writes the request, reads the answer's head (cookies go to the
client's jar) and knows where the answer ends: by its length, chunked, or
when the server closes. Every job ends in `answered` or `lost` on the
client, timed out at REQUEST_TIMEOUT_S after it fell due.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httptools

from lab.traffic.arrivals import Page

if TYPE_CHECKING:
    from lab.traffic.clients import Client

REQUEST_TIMEOUT_S = 10.0  # from falling due to the last byte of the answer, connecting included


@dataclass(slots=True)
class Job:
    """One request to make."""

    page: Page
    due: float  # loop time it fell due; latency and the timeout count from here


class Connection(asyncio.Protocol):
    """One TCP connection of a client, carrying one request at a time."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task | None = None  # while connecting
        self.parser = httptools.HttpResponseParser(self)
        self.job: Job | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        self._framed = False  # the answer has Content-Length or chunked: not read-until-close
        self._head_done = False
        self.ssl_object = None  # a TLS connection's, once its handshake is done
        self.header_sent = False  # its PROXY header went out before the TLS handshake

    def send(self, job: Job) -> None:
        if self.closed or self.transport is None:
            self.client.lost(self, job, "reset")
            return
        self.job = job
        loop = self.client.loop
        self.timer = loop.call_at(job.due + REQUEST_TIMEOUT_S, self._timed_out)
        self.transport.write(self.client.request_bytes(job.page))

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        client = self.client
        self.ssl_object = transport.get_extra_info("ssl_object")
        if self.ssl_object is not None:  # asyncio calls this once the handshake is done
            client.stats.handshake(bool(self.ssl_object.session_reused))
        if client.proxy and not self.header_sent:  # first: who this is from (lab.proxy_protocol)
            here = transport.get_extra_info("sockname")
            transport.write(client.proxy_header(here[1] if here else 0))

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # not HTTP/1.1 we read
            self._give_up("bad_response")

    def eof_received(self) -> bool:
        self.closed = True
        if self.job is None:  # an idle connection the server let go: never hand it out again
            self.client.lost(self, None, "reset")
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        job, self.job = self.job, None
        if job is not None and self._head_done and not self._framed:
            # An answer with no length ends when the connection does.
            self.client.answered(self, job, self.parser.get_status_code(), reusable=False)
            return
        self.client.lost(self, job, "reset")

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self._framed = self._head_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name)
        if size == 10 and name.lower() == b"set-cookie":
            self.client.jar.store(value.decode("latin-1"))
        elif (size == 14 and name.lower() == b"content-length") or (
            size == 17 and name.lower() == b"transfer-encoding"
        ):
            self._framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self._head_done = True
        if status < 200 or status in (204, 304):
            self._framed = True  # no body, whatever the headers say

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            return  # an interim answer (103 Early Hints): the real one follows
        job, self.job = self.job, None
        if job is None:  # an answer to nothing we asked: this connection cannot be trusted
            self.abort()
            return
        self._cancel_timer()
        if self.ssl_object is not None and self.client.context is not None:
            self.client.context.keep(self.ssl_object)  # TLS 1.3's ticket has come by now
        self.client.answered(
            self, job, self.parser.get_status_code(), self.parser.should_keep_alive()
        )

    # -- ending

    def close(self) -> None:
        """Close once written data has gone (an idle or finished connection)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self._cancel_timer()
        if self.task is not None:
            self.task.cancel()
        if self.transport is not None:
            self.transport.abort()

    def _give_up(self, kind: str) -> None:
        job, self.job = self.job, None
        self.abort()
        self.client.lost(self, job, kind)

    def _timed_out(self) -> None:
        self.timer = None
        self._give_up("timeout")

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
