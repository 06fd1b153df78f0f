"""The presenter's secret: whoever holds it commands a classroom lab.

The token is compared in constant time. Both sides are hashed first, so the
comparison always runs over 32 bytes: a guess of the wrong length takes as long
as one of the right length (hmac.compare_digest may return early on length).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "lb_lab_presenter"


def new_token() -> str:
    """A fresh secret for the presenter URL (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def holds(offered: str | None, token: str) -> bool:
    """Does `offered` (from a cookie or the URL) match the presenter's token?"""
    if not offered or not token:
        return False
    left = hashlib.sha256(offered.encode("utf-8", "replace")).digest()
    right = hashlib.sha256(token.encode("utf-8")).digest()
    return hmac.compare_digest(left, right)
