"""The web front's link to a lab service (lab.service): commands out, the lab's stream in.

A `ServiceLink` stands where an in-process LabController would (the app calls
`handle`, `describe` and `attach` on either). It follows the service's
`GET /stream` from a background task and hands each `state` and `batch` to
the front's browsers; when the stream breaks, or the service is not up yet,
it reconnects, and every new stream starts with a full `state`.

A browser that connects gets the latest `state` at once, with no request to
the service: the last one the stream brought, with every batch since folded in
(newer counters, the chart's new seconds), as a page that had been watching
would show it.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from lab.address import split_address
from lab.web.relay import HISTORY_S, LineReader

COMMAND_TIMEOUT_S = 120.0  # a lesson may start backends one after another
READ_TIMEOUT_S = 5.0
RECONNECT_S = 0.25
STREAM_REQUEST = "GET /stream HTTP/1.1\r\nHost: {}\r\nAccept: application/x-ndjson\r\n\r\n"

log = logging.getLogger(__name__)


def service_address(url: str) -> str:
    """'http://127.0.0.1:7000/' or '127.0.0.1:7000' -> '127.0.0.1:7000'; ValueError if neither."""
    text = url.strip()
    if text.startswith("http://"):
        text = text[len("http://") :]
    text = text.rstrip("/")
    if "/" in text:
        raise ValueError(f"expected the lab service's URL, http://HOST:PORT, got {url!r}")
    host, port = split_address(text)
    if port == 0:
        raise ValueError(f"the lab service's port cannot be 0, got {url!r}")
    return text


class ServiceLink:
    """One lab service, as a web front sees it."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.url = f"http://{address}/"
        self.stopped = False
        self.connected = False  # following the stream now
        self.latest: dict | None = None  # the stream's last state, batches folded in

    def handle(self, data: Any) -> dict:
        """Send one command; return the service's acknowledgement (or why there is none)."""
        return self._ask("/command", data)

    def _ask(self, path: str, data: Any) -> dict:
        try:
            body = json.dumps(data).encode()
        except (TypeError, ValueError) as exc:
            return {"ok": False, "error": f"that cannot be sent as JSON: {exc}"}
        try:
            status, answer = self._call("POST", path, body, COMMAND_TIMEOUT_S)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return {"ok": False, "error": f"the lab service did not answer ({exc})"}
        if status == 200 and isinstance(answer, dict) and "ok" in answer:
            return answer
        said = answer.get("error") if isinstance(answer, dict) else None
        return {"ok": False, "error": str(said or f"the lab service answered {status}")}

    def classroom(self, data: Any) -> dict:
        """Hand the service a viewer's answer or this front's viewer count (lab.web.room)."""
        return self._ask("/classroom", data)

    def check(self, data: Any) -> dict:
        """Have the service work out a lesson's `expect` now (lab.web.lesson_checks)."""
        return self._ask("/check", data)

    def describe(self) -> dict | None:
        """The latest full `state`; read from the service if the stream has brought none."""
        if self.latest is not None:
            return self.latest
        try:
            status, state = self._call("GET", "/state", None, READ_TIMEOUT_S)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            log.warning("could not read the lab's state: %s", exc)
            return None
        return state if status == 200 and isinstance(state, dict) else None

    def processes(self) -> dict:
        """The service's own description of who runs the lab (GET /lab)."""
        status, answer = self._call("GET", "/lab", None, READ_TIMEOUT_S)
        if status != 200:
            raise OSError(f"the lab service answered {status}")
        return answer

    def ca_pem(self) -> str:
        """The lab CA's certificate (PEM), from the service (GET /lab-ca.pem)."""
        status, answer = self._call("GET", "/lab-ca.pem", None, READ_TIMEOUT_S)
        if status != 200 or not isinstance(answer, dict) or "pem" not in answer:
            raise OSError(f"the lab service answered {status}")
        return answer["pem"]

    def recording(self, name: str) -> bytes | None:
        """A recording the service made (the Record button), or None if it has no such file."""
        host, port = split_address(self.address)
        conn = http.client.HTTPConnection(host, port, timeout=READ_TIMEOUT_S)
        try:
            conn.request("GET", "/recordings/" + quote(name))
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        return data if response.status == 200 else None

    def attach(
        self,
        publish: Callable[[str, Any], None],
        start_task: Callable[..., object],
        sleep: Callable[[float], None],
    ) -> None:
        """Hand every message of the lab's stream to `publish`, from a background task."""
        start_task(self.follow, publish, sleep)

    def close(self) -> None:
        self.stopped = True

    def follow(self, publish: Callable[[str, Any], None], sleep: Callable[[float], None]) -> None:
        """Follow the stream until stopped, reconnecting (each time from a full state)."""
        while not self.stopped:
            try:
                self._follow_once(publish)
            except (OSError, ValueError) as exc:
                if self.connected and not self.stopped:  # say it once, not at every retry
                    log.warning("the lab's stream broke: %s", exc)
            self.connected = False
            self.latest = None  # a new stream brings a new state
            if not self.stopped:
                sleep(RECONNECT_S)

    def _follow_once(self, publish: Callable[[str, Any], None]) -> None:
        with socket.create_connection(split_address(self.address), timeout=READ_TIMEOUT_S) as sock:
            sock.sendall(STREAM_REQUEST.format(self.address).encode())
            sock.settimeout(None)  # a quiet lab sends nothing for a while; that is no failure
            reader = LineReader()
            while not self.stopped:
                data = sock.recv(256 * 1024)
                if not data:
                    raise ConnectionError("the lab service closed its stream")
                for line in reader.feed(data):
                    message = json.loads(line)
                    name, body = message["name"], message["data"]
                    self.connected = True
                    self.latest = latest(self.latest, name, body)
                    publish(name, body)

    def _call(self, method: str, path: str, body: bytes | None, timeout: float) -> tuple[int, Any]:
        host, port = split_address(self.address)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()


def latest(state: dict | None, name: str, body: dict) -> dict | None:
    """The state a page that saw this message shows: a new state, or the old one updated."""
    if name == "state":
        return body
    if name == "classroom":
        return {**state, "classroom": body} if state is not None else None
    return folded(state, body)


def folded(state: dict | None, batch: dict) -> dict | None:
    """`state` as a page that saw `batch` after it shows the lab: newer counters, more chart."""
    if state is None:
        return None
    counters = batch.get("counters") or {}
    if counters.get("read", 0) > state["counters"].get("read", 0):
        live = counters.get("backends", {})
        backends = [
            {**entry, **live[entry["name"]]}
            if entry["process"] == "running" and entry["name"] in live
            else entry
            for entry in state["backends"]
        ]
        state = {**state, "counters": counters, "backends": backends}
    if batch.get("latency"):
        history = (state["latency_history"] + batch["latency"])[-HISTORY_S:]
        state = {**state, "latency_history": history}
    return state
