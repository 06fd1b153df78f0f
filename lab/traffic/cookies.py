"""A simulated client's cookie jar: keep what Set-Cookie says, send it back as Cookie.

Deliberately small: one jar per client and one site (the target), so domain,
path, Secure and expiry dates do not matter. Only `name=value` is kept; a
`Max-Age` of 0 or less deletes the cookie, which is how servers log a user out.
"""

from __future__ import annotations

MAX_COOKIES = 50
MAX_COOKIE_BYTES = 4096  # what browsers allow for one cookie


class CookieJar:
    def __init__(self) -> None:
        self._cookies: dict[str, str] = {}
        self._header = b""

    def store(self, set_cookie: str) -> None:
        """Take in one Set-Cookie header value."""
        pair, *attributes = set_cookie.split(";")
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or len(pair) > MAX_COOKIE_BYTES or not _printable(name + value):
            return
        if any(_expires_now(attribute) for attribute in attributes):
            self._cookies.pop(name, None)
        elif name in self._cookies or len(self._cookies) < MAX_COOKIES:
            self._cookies[name] = value
        self._header = "; ".join(f"{k}={v}" for k, v in self._cookies.items()).encode("latin-1")

    def header(self) -> bytes:
        """The Cookie header's value (b"" when the jar is empty)."""
        return self._header

    def as_dict(self) -> dict[str, str]:
        return dict(self._cookies)

    def clear(self) -> None:
        self._cookies.clear()
        self._header = b""


def _printable(text: str) -> bool:
    return all(" " < c < "\x7f" and c not in ";,\\" for c in text)


def _expires_now(attribute: str) -> bool:
    name, _, value = attribute.partition("=")
    if name.strip().lower() != "max-age":
        return False
    value = value.strip()
    return value.startswith("-") or (value.isdigit() and int(value) == 0)
