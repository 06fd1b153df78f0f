"""HTTPS for the simulated clients: the SNI name each one asks for, and its TLS session.

With `tls` on, every connection a client opens is TLS, verified against the
CA file the generator was given (the lab's ca.pem). Each client asks for one
SNI name, taken from the `sni_mix`, e.g. {"shop.lab.test": 3, "api.lab.test": 1}:
of every four clients, three visit shop and one visits api (`names_for`, in a
smooth order, so two clients already see both names). Its Host header then
names the same site, as a browser's does.

With `resumption` on, a client keeps the TLS session of its last connection
and offers it on the next one (a session ticket): the server skips the full
handshake. Off, every connection pays for a full handshake, which a learner
sees in the latency with keep-alive off. A client has its own `ClientContext`
because an ssl session may only be offered through the context that made it.
"""

from __future__ import annotations

import ssl
from typing import Any

from lab.traffic.settings import SettingError


def names_for(mix: dict[str, int], count: int) -> list[str | None]:
    """The SNI name of clients c1..c<count>: the mix's shares, smoothly interleaved.

    Smooth weighted round robin (nginx's) over the names: with shop=3, api=1 the
    clients get shop, shop, api, shop, then again. None for every client when the
    mix is empty (the target's host is asked for).
    """
    if not mix:
        return [None] * count
    current = dict.fromkeys(mix, 0)
    total = sum(mix.values())
    names: list[str | None] = []
    for _ in range(count):
        for name, weight in mix.items():
            current[name] += weight
        chosen = max(current, key=lambda name: current[name])  # the first of equals
        current[chosen] -= total
        names.append(chosen)
    return names


def read_ca(path: str) -> str:
    """The CA file's PEM text, read once (each client loads it into its own context)."""
    try:
        with open(path, encoding="ascii") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingError("ca_file", f"cannot read the CA file {path}: {exc}") from None
    try:
        ssl.create_default_context(cadata=text)
    except ssl.SSLError as exc:
        raise SettingError("ca_file", f"{path} is not a PEM CA certificate ({exc})") from None
    return text


class ClientContext(ssl.SSLContext):
    """One client's TLS: verify against the CA, and offer its last session when resuming."""

    session: ssl.SSLSession | None = None
    resume = True

    def wrap_bio(  # type: ignore[override]
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        # asyncio's create_connection has no `session` argument: its SSL layer makes the
        # connection's SSLObject here, so this is where the kept session is offered.
        offered = session or (self.session if self.resume else None)
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, offered)

    def keep(self, ssl_object: Any) -> None:
        """Keep the session of a connection whose answer came (TLS 1.3 sends its ticket late)."""
        if self.resume and ssl_object is not None:
            self.session = ssl_object.session


def client_context(ca_pem: str, resume: bool) -> ClientContext:
    context = ClientContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.load_verify_locations(cadata=ca_pem)
    context.resume = resume
    return context
