"""A classroom lab: the viewer URL (with its QR code) and the presenter's URL.

The presenter URL carries the token once; the page swaps it for an HttpOnly,
SameSite=Strict cookie and redirects to the same page without it, so the token
leaves the address bar and never reaches a viewer.
"""

from __future__ import annotations

import io

import segno

TOKEN_PARAM = "key"  # ?presenter=1 is the presenter *view* (large type), for anyone


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
