"""Failover within one request: when a backend fails an exchange, retry or answer.

A backend can break HTTP, go silent, or close the connection. If nothing of its
response has reached the client yet, the request may go to another backend:
always when the backend never received it, and for a request it may have
acted on only when the method is idempotent (lab.balancer.retries says). Once
the client has part of an answer, the only honest thing left is to cut it off
and say why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.balancer.retries import retry_note, why_not_retry

if TYPE_CHECKING:
    from lab.balancer.http_exchange import Exchange
    from lab.balancer.upstream import UpstreamConnection


def upstream_failed(
    self: Exchange, conn: UpstreamConnection, reason: str, retry: bool = True
) -> None:
    """The backend broke HTTP. `retry=False`: answer 502 now, as nginx does for an
    answer it cannot forward (proxy_next_upstream has no invalid_header by default)."""
    conn.close()
    self.upstream = None
    if self.response_started:
        self.end(conn.status or 502, close=True, failed=True, why=reason)
    elif not retry:
        self.balancer.release(self.backend, None, failed=True, why=reason)
        self.backend = None
        self.answer(502, reason)
    else:
        failed_before_response(self, reason, count_failure=True, sent=True)


def backend_timed_out(self: Exchange) -> None:
    """The backend said nothing for timeouts.backend_response_ms (see HttpClientConnection)."""
    conn = self.upstream
    limit = self.balancer.config.timeouts.backend_response_ms
    reason = f"{self.backend.name} sent nothing for {limit} ms"
    if conn is None:
        return
    conn.close()
    self.upstream = None
    if self.response_started:
        self.balancer.publish_error(
            self.id, None, reason + " mid-response; the client got a cut-off answer",
            self.backend, kind="timeout",
        )  # fmt: skip
        self.end(502, close=True, failed=True, why=reason)
    else:
        failed_before_response(self, reason, count_failure=True, sent=True)


def upstream_lost(self: Exchange, conn: UpstreamConnection) -> None:
    """The backend closed the connection before the response was complete."""
    self.upstream = None
    if self.response_started:
        # The client learns it from the connection closing. A body that runs to the
        # close has simply ended; any other body was cut off, and that is a failure.
        cut_off = not conn.until_close
        why = f"{conn.backend.name} closed the connection mid-response"
        if cut_off:
            self.balancer.publish_error(
                self.id, None, why + "; the client got a cut-off answer",
                conn.backend, kind="cut-off",
            )  # fmt: skip
        # A cut-off answer is reported as 502 (with the error event saying why), so
        # whoever draws the done event sees a failure, not the 200 that began it.
        self.end(502 if cut_off else conn.status, close=True, failed=cut_off, why=why)
    else:
        # A reused keep-alive connection may have been closed by the backend while idle:
        # that is ordinary, not the backend's failure.
        fresh = conn.served == 0
        failed_before_response(
            self,
            f"{conn.backend.name} closed the connection before answering",
            count_failure=fresh,
            sent=True,
        )


def failed_before_response(
    self: Exchange, reason: str, count_failure: bool, sent: bool = False
) -> None:
    """Nothing of the response reached the client: try another backend if that is safe.

    `sent` means the backend may have received the request (and acted on it), so
    only an idempotent method is sent again, unless retries.non_idempotent says
    otherwise. A request that never reached a backend is always safe to resend.
    """
    backend = self.backend
    balancer = self.balancer
    balancer.release(backend, None, failed=count_failure, why=reason)
    if count_failure:
        self.tried = [*self.tried, backend]
    self.backend = None
    body_lost = self.body_sent and self.replay is None
    why_not = (
        why_not_retry(
            balancer.config.retries,
            self.attempts,
            self.method,
            sent,
            body_lost,
            backend.name,
            self.info.upgrade,
        )
        or balancer.retry_budget.allow()
    )
    if why_not:
        self.answer(502, f"{reason}; not retried: {why_not}")
        return
    note = retry_note(self.method, sent)
    balancer.publish_error(self.id, None, f"{reason}; {note}", backend, kind="retry")
    if self.body_sent:  # send the kept body again, from the start
        self.body, self.buffered, self.body_sent = list(self.replay), 0, False
        self.replay = None
    self.route()
