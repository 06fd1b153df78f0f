"""A classroom lab: the viewer URL (with its QR code) and the presenter's URL.

The presenter URL carries the token once; the page swaps it for an HttpOnly,
SameSite=Strict cookie and redirects to the same page without it, so the token
leaves the address bar and never reaches a viewer.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Iterable

import segno

TOKEN_PARAM = "key"  # ?presenter=1 is the presenter *view* (large type), for anyone


def viewer_url(host: str, port: int, own: Iterable[str]) -> str:
    """The URL viewers open: the bound address, or, bound to every address (0.0.0.0, ::),
    one of this machine's own (`own`) that others can reach; "" if it has none."""
    if host not in ("0.0.0.0", "::", ""):
        return f"http://{_shown(host)}:{port}/"
    reachable = []
    for text in own:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if not (address.is_loopback or address.is_link_local or address.is_unspecified):
            reachable.append(address)
    if not reachable:
        return ""
    best = min(reachable, key=lambda a: (a.version, int(a)))  # IPv4 first: easier to type
    return f"http://{_shown(str(best))}:{port}/"


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def qr_text(url: str) -> str:
    """The URL as a QR code drawn with characters, for the terminal."""
    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True)
    return out.getvalue()


def qr_svg(url: str) -> str:
    """The URL as a QR code in SVG, for the presenter's page."""
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=4, xmldecl=False, svgns=True)
    return out.getvalue().decode()


def announce(url: str, token: str) -> str:
    """What `lb-lab serve --classroom` prints: both URLs and the viewers' QR code."""
    return (
        f"\nLoad Balancing Lab (classroom)\n"
        f"  viewers:   {url}\n"
        f"  presenter: {url}?{TOKEN_PARAM}={token}  (keep this one to yourself)\n"
        f"{qr_text(url)}"
    )
