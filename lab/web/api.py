"""A small JSON-over-HTTP client for the lab's own APIs: balancer admin, backend /_lab/, traffic.

The web lab steers every process only through these APIs. Errors come back as
`ApiError` with the process's own words (its `{"error": ...}`), so a refused
change can be shown to the learner as it was said.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from typing import Any


class ApiError(RuntimeError):
    """A call that failed: the process said no (status >= 400) or did not answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class JsonApi:
    """One process's API at `address` (HOST:PORT), over one keep-alive connection.

    Calls are serialised, so one JsonApi may be shared; give a busy poller its own.
    """

    def __init__(
        self,
        address: str,
        who: str,
        timeout: float = 5.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.address = address
        self.who = who
        self.timeout = timeout
        # Told of every request that changed something, or may have: answered 2xx, or not
        # answered at all. A refusal (4xx, 5xx) changed nothing: the APIs check a change whole.
        self.on_change = on_change
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        """Send one request; return the decoded JSON body of a 2xx answer, else raise ApiError."""
        try:
            return self._call(method, path, payload)
        except ApiError as exc:
            if exc.status is None and method != "GET" and self.on_change is not None:
                self.on_change()
            raise

    def _call(self, method: str, path: str, payload: Any) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        with self._lock:
            if method != "GET":
                self.close()  # a fresh connection: a stale one could fail a change half-way
            try:
                status, data = self._exchange(method, path, body)
            except (OSError, http.client.HTTPException) as first:
                self.close()
                if method != "GET":  # a change may have happened: never send it twice
                    raise ApiError(self._silent(first, change=True)) from None
                try:
                    status, data = self._exchange(method, path, body)
                except (OSError, http.client.HTTPException) as exc:
                    self.close()
                    raise ApiError(self._silent(exc)) from None
        try:
            answer = json.loads(data) if data else {}
        except ValueError:
            raise ApiError(
                f"{self.who} answered {status} with something that is not JSON"
            ) from None
        if status >= 400:
            said = answer.get("error") if isinstance(answer, dict) else None
            raise ApiError(str(said or f"{self.who} answered {status}"), status)
        if method != "GET" and self.on_change is not None:
            self.on_change()
        return answer

    def _silent(self, exc: Exception, change: bool = False) -> str:
        """Why there is no answer, in words that do not blame the request."""
        why = (
            f"within {self.timeout:g} s (it may be stuck)"
            if isinstance(exc, TimeoutError)
            else f"({exc})"
        )
        maybe = ", so the change may or may not have been made" if change else ""
        return f"{self.who} did not answer {why}{maybe}"

    def _exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        if self._conn is None:
            host, _, port = self.address.rpartition(":")
            self._conn = http.client.HTTPConnection(host.strip("[]"), int(port), self.timeout)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self._conn.request(method, path, body=body, headers=headers)
        response = self._conn.getresponse()
        data = response.read()
        if response.will_close:
            self.close()
        return response.status, data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
