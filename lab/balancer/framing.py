"""Where a backend's response ends, when the backend sent more than that response.

llhttp finds the end of a message but cannot say at which byte. That is only
needed when a backend wrote past its response (bytes after the body, a body
after a HEAD, 204 or 304 answer, or a second response nobody asked for), which
is rare and always the backend's fault. Then the response is parsed again from
its first byte, with fresh parsers, to find the shortest prefix that completes
it. The hot path never comes here.
"""

from __future__ import annotations

import contextlib

import httptools


class _Stop(Exception):
    """The response is complete: parse no further."""


class _Probe:
    def __init__(self, is_head: bool) -> None:
        self.is_head = is_head
        self.interim = False
        self.done = False
        self.parser = httptools.HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self.interim = 100 <= status < 200 and status != 101
        if self.is_head and not self.interim:  # a HEAD answer has no body, whatever it says
            self.done = True
            raise _Stop

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.done = True
        raise _Stop

    def completes(self, data: bytes) -> bool:
        with contextlib.suppress(httptools.HttpParserError):
            self.parser.feed_data(data)
        return self.done


def response_end(before: bytes, data: bytes, is_head: bool) -> int:
    """How many bytes of `data` belong to the response that began at the start of `before`
    (earlier reads of the same response); the rest of `data` is surplus."""
    low, high = 0, len(data)
    while low < high:  # the shortest prefix that completes the response
        middle = (low + high) // 2
        if _Probe(is_head).completes(before + data[:middle]):
            high = middle
        else:
            low = middle + 1
    return low
