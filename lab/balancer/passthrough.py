"""TLS passthrough at Layer 4: read the ClientHello in the clear and route on its name.

With tls.mode = "passthrough" the TCP proxy reads one thing before choosing a
backend: the client's TLS ClientHello, for its server name (SNI). The name picks
the pool (a rule's sni, or tls.no_sni_pool when there is none); nothing is
decrypted. The hello goes on to the backend as it came, untouched, and the
client's TLS session is with the backend itself. A hello that is not TLS, has no
name to route by, or does not arrive within timeouts.client_header_ms closes the
connection with an error event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.balancer.algorithms import RequestInfo
from lab.balancer.client_hello import ClientHello, HelloReader, NotTls
from lab.balancer.rules import match_sni

if TYPE_CHECKING:
    from lab.balancer.tcp_proxy import TcpClientConnection


def await_hello(self: TcpClientConnection) -> None:
    self.hello_reader = HelloReader()
    self.header_timer = self.loop.call_at(self.header_deadline, hello_late, self)


def read_hello(self: TcpClientConnection, data: bytes) -> None:
    """Buffer the client's bytes until the hello is whole, then route on its name."""
    reader = self.hello_reader
    assert reader is not None
    try:
        hello = reader.feed(data)
    except NotTls as exc:
        refuse_hello(self, f"not a TLS ClientHello: {exc} (from {self.client[0]})")
        return
    if hello is None:
        return
    self.hello_reader = None
    if self.header_timer is not None:
        self.header_timer.cancel()
    self.hello = hello
    self.transport.pause_reading()
    self.received += len(reader.buffer)
    self.early.append(reader.buffer)  # the hello, and anything after it, go on untouched
    self.info = RequestInfo(self.client[0], sni=hello.sni)
    if choose_pool(self, hello):
        self.route()


def choose_pool(self: TcpClientConnection, hello: ClientHello) -> bool:
    """The SNI name picks the pool (rules), or its absence does (tls.no_sni_pool)."""
    balancer = self.balancer
    name = hello.sni
    if name is None:
        if not balancer.no_sni_pool:
            refuse_hello(
                self,
                f"the ClientHello from {self.client[0]} has no server name (SNI) and "
                "tls.no_sni_pool is not set: nothing to route by",
            )
            return False
        self.pool = balancer.pools[balancer.no_sni_pool]
        self.why_pool = f"no SNI in the ClientHello -> pool {self.pool.name} (tls.no_sni_pool)"
        return True
    if not balancer.rules:
        return True
    rule = match_sni(balancer.rules, name)
    if rule is None:
        self.why_pool = f"sni {name} matched no rule -> pool {self.pool.name}"
        return True
    self.rule = rule
    self.pool = balancer.pools[rule.pool]
    self.why_pool = f"sni {name} matched rule {rule.name} -> pool {rule.pool}"
    if rule.host is not None:
        self.why_pool += " (a host rule: at Layer 4 the host is the SNI name)"
    return True


def hello_late(self: TcpClientConnection) -> None:
    reader = self.hello_reader
    got = len(reader.buffer) if reader is not None else 0
    refuse_hello(
        self,
        f"no complete ClientHello within {self.balancer.config.timeouts.client_header_ms} ms "
        f"(timeouts.client_header_ms; {got} bytes came)",
    )


def refuse_hello(self: TcpClientConnection, reason: str) -> None:
    if self.finished:
        return
    self.hello_reader = None
    if self.header_timer is not None:
        self.header_timer.cancel()
    self.balancer.publish_error(self.id, None, reason, kind="tls")
    self.finished = True
    self.transport.close()
