"""An active UDP health check: one probe datagram, and a reply within the timeout.

UDP cannot "connect", so silence is the only sign of most failures. The probe
goes out on a connected socket, which also turns an ICMP port-unreachable into
an immediate, clear failure instead of a timeout.
"""

from __future__ import annotations

import asyncio


class _Probe(asyncio.DatagramProtocol):
    def __init__(self, answer: asyncio.Future) -> None:
        self.answer = answer

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


async def udp_probe(host: str, port: int, send: str, expect: str) -> tuple[bool, str]:
    """Send `send`; pass on a reply that holds `expect` ("" passes any reply).

    Raises TimeoutError (from the caller's timeout) when nothing comes back, and
    ConnectionRefusedError on an ICMP port-unreachable.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Probe(answer), remote_addr=(host, port)
    )
    try:
        transport.sendto(send.encode())
        reply = await answer
    finally:
        transport.close()
    if expect and expect.encode() not in reply:
        shown = reply[:60].decode("utf-8", "replace")
        return False, f"replied without {expect}: {shown}"
    return True, f"replied ({len(reply)} bytes)"
