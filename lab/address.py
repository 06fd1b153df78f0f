"""HOST:PORT, read and written one way everywhere: "127.0.0.1:8080", "[::1]:8080".

An IPv6 host is written in brackets (RFC 3986), so the last colon always
separates the port. Reading also takes a bare IPv6 host ("::1:8080"), which
older output printed, by the same rule.
"""

from __future__ import annotations

import contextlib
import socket


def split_address(text: object) -> tuple[str, int]:
    """'[::1]:8080' -> ('::1', 8080); ValueError saying what is wrong. Port 0 is allowed."""
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(f"expected HOST:PORT, got {_shown(text)}")
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError(f"missing host in {_shown(text)}")
    if "[" in host or "]" in host:
        raise ValueError(f"brackets go round an IPv6 host, as in [::1]:80; got {_shown(text)}")
    # ASCII digits only: str.isdigit() also says yes to "²", which int() then refuses.
    if not (port.isascii() and port.isdigit() and len(port) <= 5) or int(port) > 65535:
        raise ValueError(f"port must be 0-65535, got {_shown(port)}")
    return host, int(port)


def join_address(host: str, port: int) -> str:
    """('::1', 8080) -> '[::1]:8080'; ('127.0.0.1', 80) -> '127.0.0.1:80'."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def can_bind(host: str) -> bool:
    """Can a socket here send from `host`? Linux routes all of 127/8 to loopback; macOS
    has only 127.0.0.1 unless told otherwise (`ifconfig lo0 alias 127.0.0.2`)."""
    with contextlib.suppress(OSError), socket.socket() as probe:
        probe.bind((host, 0))
        return True
    return False


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
