"""Who may reach the web lab, and who may command it.

On loopback (the default, `--host 127.0.0.1`) the page answers only to loopback
names, and anyone who can connect may command the lab: only this machine can.

Beyond loopback (`--host 0.0.0.0` or an interface's address) other machines can
reach the page, so two more rules hold:

- The page answers only to the names and addresses the lab serves on: the
  `--host` it was given, the machine's interface addresses, its own host name
  and the loopback names. A page on some other domain that resolves to this
  machine (DNS rebinding) sends its own name in Host and is refused, even
  though its Origin matches that Host.
- Browsers on other machines may watch but not command, unless the lab was
  started with `--allow-remote-control`. `Access.refusal` is the one place that
  decides whether a connection may command (a presenter's token would be
  checked there too).
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from http.cookies import CookieError, SimpleCookie

from lab.web import presenter

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address
ANY = ("0.0.0.0", "::", "")


def host_name(header: str) -> str:
    """The name in a Host header, without port or brackets, lower case: "[::1]:5000" -> "::1"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.partition(":")[0].rstrip(".")


def canonical(name: str) -> str:
    """One spelling per address ("FE80::1" and "fe80:0::1" match); names as they are."""
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name.lower().rstrip(".")


def is_loopback(host: str) -> bool:
    """True for an address or name that only this machine can reach."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@dataclass(frozen=True)
class Access:
    """The Host names the page answers to, and whether other machines may command."""

    names: frozenset[str] = LOOPBACK_NAMES
    beyond: bool = False  # bound beyond loopback
    remote_control: bool = False
    own: frozenset[str] = frozenset()  # this machine's addresses: a browser here connects from one
    token: str = ""  # classroom: only the presenter's cookie commands; never sent to viewers

    @property
    def limits_commands(self) -> bool:
        """Bound each connection's command rate: in a classroom, or when others can reach us.
        On loopback the one user may script the lab as fast as it likes (the tests do)."""
        return bool(self.token) or self.beyond

    def classroom(self, token: str) -> Access:
        """The same names, but commands come only from whoever holds `token`."""
        return replace(self, token=token)

    @classmethod
    def loopback(cls, host: str = "127.0.0.1") -> Access:
        return cls(names=LOOPBACK_NAMES | {canonical(host)})

    @classmethod
    def beyond_loopback(
        cls,
        host: str,
        remote_control: bool,
        interfaces: Iterable[str] | None = None,
        names: Iterable[str] | None = None,
    ) -> Access:
        """For a bind beyond loopback; interfaces and names default to this machine's."""
        own = {canonical(a) for a in (interface_addresses() if interfaces is None else interfaces)}
        found = own | {canonical(n) for n in (machine_names() if names is None else names)}
        if host not in ANY:
            found.add(canonical(host))
        return cls(
            names=LOOPBACK_NAMES | found,
            beyond=True,
            remote_control=remote_control,
            own=frozenset(own),
        )

    @classmethod
    def for_bind(cls, host: str, remote_control: bool) -> Access:
        """The access rules for the page bound on `host`."""
        if is_loopback(host):
            return cls.loopback(host)
        return cls.beyond_loopback(host, remote_control)

    def host_allowed(self, header: str) -> bool:
        """May a request with this Host header be answered?"""
        return canonical(host_name(header)) in self.names

    def notice(self) -> str:
        """What the lab prints under its URL about who else can reach it ("" on loopback)."""
        if not self.beyond:
            return ""
        if self.remote_control:
            return (
                "WARNING: --allow-remote-control: anyone who can reach this page from another "
                "machine can command the lab (kill backends, change every setting)"
            )
        return (
            "note: other machines can watch this page; only this machine can command it, "
            "unless you restart the lab with --allow-remote-control"
        )

    def refusal(self, environ: dict) -> str | None:
        """Why this connection may not command the lab, or None if it may."""
        if self.token:
            if presenter.holds(presenter_cookie(environ), self.token):
                return None
            return (
                "this is a classroom lab: viewers watch and answer predictions; "
                "only the presenter commands it"
            )
        if not self.beyond or self.remote_control:
            return None
        peer = canonical(environ.get("REMOTE_ADDR", ""))
        if is_loopback(peer) or peer in self.own:
            return None
        return (
            "this lab takes commands only from the machine it runs on, so this page may "
            "watch but not change it; to let other machines command it, restart the lab "
            "with lb-lab serve --allow-remote-control"
        )


def presenter_cookie(environ: dict) -> str | None:
    """The presenter cookie sent with this request or Socket.IO handshake, if any."""
    try:
        morsel = SimpleCookie(environ.get("HTTP_COOKIE", "")).get(presenter.COOKIE)
    except CookieError:
        return None
    return morsel.value if morsel is not None else None


def machine_names() -> set[str]:
    """This machine's own names: what a browser on the network may type to reach it."""
    name = socket.gethostname().lower()
    found = {name, f"{name}.local"} if name else set()
    found.add(socket.getfqdn().lower())  # getfqdn falls back to its argument on error
    return {item for item in found if item}


def interface_addresses() -> set[str]:
    """The addresses of this machine's interfaces (IPv4 and IPv6), best effort."""
    found: set[str] = set()
    try:
        interfaces = [name for _, name in socket.if_nameindex()]
    except OSError:
        interfaces = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for name in interfaces:
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address on it
            found.add(socket.inet_ntoa(answer[20:24]))
    try:
        with open("/proc/net/if_inet6") as table:  # Linux lists IPv6 addresses here
            for line in table:
                raw = line.split()[0]
                found.add(str(ipaddress.IPv6Address(int(raw, 16))))
    except (OSError, ValueError, IndexError):
        pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]).partition("%")[0])
    except OSError:
        pass
    return found
