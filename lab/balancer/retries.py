"""When a request that failed before its response began may go to another backend.

A request that never reached a backend is always safe to send again. One that a
backend may have received, and acted on, is sent again only if its method is
idempotent (RFC 9110 9.2.2), unless retries.non_idempotent says otherwise, as
nginx's proxy_next_upstream does. And only while its body was small enough to
keep for the replay. A WebSocket handshake a backend may have received is never
sent again: that backend may have begun a session for it.
"""

from __future__ import annotations

from typing import Final

from lab.balancer.settings import RetrySettings

IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# A body up to this size is kept until the response begins, so a retry can send it again.
REPLAY_LIMIT: Final = 64 * 1024


def why_not_retry(
    settings: RetrySettings,
    attempts: int,
    method: str,
    sent: bool,
    body_lost: bool,
    backend: str,
    upgrade: str = "",
) -> str:
    """Why this request must not be tried again, or "" when another try is allowed.

    `sent`: `backend` may have received it. `body_lost`: part of its body went out
    and was too big to keep. `upgrade`: the protocol a handshake asks for.
    """
    if attempts >= settings.tries:
        return f"{attempts} tries used (retries.tries is {settings.tries})"
    if sent and upgrade:
        return f"a {upgrade} handshake is never sent twice: {backend} may have begun its session"
    if sent and method not in IDEMPOTENT and not settings.non_idempotent:
        return (
            f"a {method} is not sent twice: {backend} may have acted on it "
            "(retries.non_idempotent is off)"
        )
    if body_lost:
        return f"its body was too big to keep for a retry (over {REPLAY_LIMIT >> 10} KiB)"
    return ""


def retry_note(method: str, sent: bool) -> str:
    """What the retry event says it does."""
    if sent and method not in IDEMPOTENT:
        return f"sending the {method} again on another (retries.non_idempotent is on)"
    return "trying another"
