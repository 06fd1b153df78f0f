"""The lab service's API on loopback: commands in, the lab's stream out (lab.http_api's core).

GET  /stream     NDJSON: a full state first, then every state and batch, in order
POST /command    one command, as the page sends it; answers its acknowledgement
POST /check      {"slug", "index"}: a lesson's `expect` worked out now (lab.web.lesson_checks)
POST /classroom  a viewer's answer or a web front's viewer count (lab.web.room)
GET  /state      a full state, read now
GET  /lab        the processes (pids, addresses) and the lab's certificate files
GET  /lab-ca.pem {"pem": the lab CA's certificate}, for the page's download link
GET  /recordings/NAME  a recording the `record` command made (lab.recording.service)

Commands and state readings talk to the lab's processes and may take seconds,
so they run in worker threads; the connection is handed their answer (and
closed) when it is ready, and the event loop never waits on them.

The API listens on loopback and has no login: its clients are this machine's
web fronts and tools. A web page in a browser is not one of them, so a
request that carries an Origin (browsers send one with a page's requests), or
a Host that is not a loopback name (a page whose name was pointed at this
machine: DNS rebinding), is refused; so is a command that is not sent as
application/json, which no page can send elsewhere without the browser asking
first (a CORS preflight, which this API never allows).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import traceback
from collections.abc import Callable
from typing import Any

from lab.http_api import ApiConnection, ApiError, Request, Response, error_body, parse_json
from lab.service.stream import Stream
from lab.web.access import host_name, is_loopback
from lab.web.fields import CommandError

ENDPOINTS = {
    "/stream": "GET", "/command": "POST", "/check": "POST", "/state": "GET", "/lab": "GET",
    "/classroom": "POST", "/lab-ca.pem": "GET", "/": "GET",
}  # fmt: skip
RECORDINGS = "/recordings/"


class ServiceConnection(ApiConnection):
    """One client of the lab service: a web front, a test, or curl."""

    def __init__(self, lab: Any, stream: Stream, address: str) -> None:
        super().__init__(self.answer, "lab service")
        self.lab = lab  # a started lab.web.controller.LabController
        self.stream = stream
        self.address = address

    def answer(self, request: Request) -> Response | Callable:
        path, method = request.path, request.method
        refused = refusal(request)
        if refused is not None:
            raise ApiError(*refused)
        if path.startswith(RECORDINGS) and method == "GET":
            return self.recording(path[len(RECORDINGS) :])
        wanted = ENDPOINTS.get(path)
        if wanted is None:
            raise ApiError(404, f"no lab service endpoint {path}; try GET /")
        if method != wanted:
            raise ApiError(405, f"{method} is not allowed on {path}", allow=(wanted,))
        if path == "/stream":
            return self.start_stream
        if path == "/command":
            command = parse_json(request.body or b"null")
            return answer_later(lambda: Response(200, self.lab.handle(command)))
        if path == "/check":
            asked = parse_json(request.body or b"null")
            return answer_later(lambda: Response(200, self.lab.check(asked)))
        if path == "/classroom":  # no I/O: answered at once
            return Response(200, self.lab.classroom(parse_json(request.body or b"null")))
        if path == "/state":
            return answer_later(self.read_state)
        if path == "/lab":
            return Response(200, self.processes())
        if path == "/lab-ca.pem":
            try:
                return Response(200, {"pem": self.lab.ca_pem()})
            except (CommandError, OSError) as exc:
                raise ApiError(503, f"the lab has no CA to offer: {exc}") from None
        lines = __doc__.strip().splitlines()[2:9]
        return Response(200, {"endpoints": [line.strip() for line in lines]})

    def start_stream(self, transport: asyncio.Transport) -> Callable[[], None]:
        subscriber = self.stream.subscribe(transport, self.lab.describe)
        return lambda: self.stream.unsubscribe(subscriber)

    def recording(self, name: str) -> Response:
        recorder = getattr(self.lab, "recorder", None)
        data = recorder.file(name) if recorder is not None else None
        if data is None:
            raise ApiError(404, f"no recording {name!r} (they last as long as the lab service)")
        return Response(200, text=data, content_type=b"application/gzip")

    def read_state(self) -> Response:
        state = self.lab.describe()
        if state is None:
            return Response(503, error_body("the lab could not describe itself (its log says why)"))
        return Response(200, state)

    def processes(self) -> dict:
        """Who runs this lab, for a benchmark or a second front: pids and addresses."""
        lab = self.lab
        children = dict(lab.supervisor.children)
        files = getattr(lab, "certificates", None)
        return {
            "pid": os.getpid(),
            "api": self.address,
            "addresses": dict(lab.addresses),
            "settings": lab.settings.as_json(),
            "traffic_error": lab.traffic_error,
            "certificates": files.as_json() if files is not None else None,
            "backends": [
                {
                    "name": r.name,
                    "address": r.address,
                    "tls_address": r.tls_address,
                    "process": r.process,
                }
                for r in sorted(lab.backends.values(), key=lambda r: (r.number, r.name))
            ],
            "children": [
                {
                    "name": name,
                    "pid": child.pid,
                    "running": child.alive(),
                    "address": child.addresses.get("listen") or child.addresses.get("control"),
                }
                for name, child in children.items()
            ],
        }


def refusal(request: Request) -> tuple[int, str, str] | None:
    """(status, why, which header) when a request may not come from a web front or a tool."""
    headers = request.headers
    if "origin" in headers:
        return (
            403,
            "the lab service takes no requests from web pages; open the lab's page",
            "origin",
        )
    host = host_name(headers.get("host", ""))
    if host and not is_loopback(host):
        return 403, "the lab service answers only to 127.0.0.1, localhost or [::1]", "host"
    if request.method == "POST":
        kind = headers.get("content-type", "").partition(";")[0].strip().lower()
        if kind != "application/json":
            return 415, "send a command as Content-Type: application/json", "content-type"
    return None


def answer_later(work: Callable[[], Response]) -> Callable[[asyncio.Transport], Callable]:
    """Take the connection over, do `work` in a thread, then answer with its Response and close."""

    def take_over(transport: asyncio.Transport) -> Callable[[], None]:
        loop = asyncio.get_running_loop()

        def run() -> None:
            try:
                response = work()
            except Exception as exc:  # a bug: answer it as the server core would
                traceback.print_exception(exc)
                message = f"internal error in the lab service (logged): {type(exc).__name__}"
                response = Response(500, error_body(message))
            with contextlib.suppress(RuntimeError):  # the loop closed: the service is stopping
                loop.call_soon_threadsafe(send, response)

        def send(response: Response) -> None:
            if not transport.is_closing():
                transport.write(response.encode(close=True))
                transport.close()

        threading.Thread(target=run, name="lab-command", daemon=True).start()
        return lambda: None

    return take_over
