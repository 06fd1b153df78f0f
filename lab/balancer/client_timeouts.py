"""The Layer 7 client connection's timeouts, on one lazy timer per connection.

timeouts.client_header_ms bounds a request head (a slowloris client holds one
connection, not the balancer), timeouts.idle_ms an idle keep-alive connection,
and timeouts.backend_response_ms a backend that went silent. The hot path only
notes when things happen (`head_started`, `idle_since`, `upstream_seen`) and
compares with `timer_when`; the timer, when it fires, works out what is overdue.
"""

from __future__ import annotations

import math
from time import monotonic
from typing import TYPE_CHECKING

from lab.balancer.error_answers import reject
from lab.balancer.failover import backend_timed_out

if TYPE_CHECKING:
    from lab.balancer.http_proxy import HttpClientConnection


def arm(self: HttpClientConnection, delay: float) -> None:
    self.timer = self.loop.call_later(delay, on_timer, self)
    self.timer_when = monotonic() + delay


def wake_by(self: HttpClientConnection, when: float) -> None:
    """Make sure the timer fires no later than `when`. Most times it already does:
    the hot path compares with `timer_when` itself and calls this only when not."""
    if when < self.timer_when:
        if self.timer is not None:
            self.timer.cancel()
        arm(self, max(when - monotonic(), 0.0))


def on_timer(self: HttpClientConnection) -> None:
    """Close what is overdue: a slow request head (slowloris), an idle keep-alive
    connection, or a backend that went silent. Otherwise sleep until the next deadline."""
    self.timer = None
    self.timer_when = math.inf
    if self.closing:
        return
    timeouts = self.balancer.config.timeouts
    now = monotonic()
    deadlines = []
    # A head is due while one is arriving, and on a new connection before the first.
    if self.in_head and (self.head_raw or not (self.idle_since or self.exchanges)):
        deadlines.append((self.head_started + timeouts.client_header_ms / 1000, "head"))
    elif not self.exchanges:
        deadlines.append((self.idle_since + timeouts.idle_ms / 1000, "idle"))
    if self.exchanges and self.exchanges[0].upstream is not None:
        deadline = self.exchanges[0].upstream_seen + timeouts.backend_response_ms / 1000
        deadlines.append((deadline, "backend"))
    if not deadlines:
        arm(self, 1.0)  # connecting, queued or sending a body: look again soon
        return
    deadline, what = min(deadlines)
    if deadline > now:
        arm(self, deadline - now)
    elif what == "head":
        reject(
            self,
            408,
            f"the request head took longer than {timeouts.client_header_ms} ms "
            "(timeouts.client_header_ms; a slowloris client costs one connection)",
        )
    elif what == "idle":
        self.close()  # as nginx does: an idle keep-alive connection just ends
    else:
        backend_timed_out(self.exchanges[0])
        if not self.closing:
            arm(self, 0.05)
