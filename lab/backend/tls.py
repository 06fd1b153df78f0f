"""A toy backend's HTTPS listener: the same app on a second port, behind TLS.

With `--tls-port N --tls-cert F --tls-key F` a backend serves the same answers
on a TLS listener as well as on its plain port. The plain port stays: health
checks, the lab's control API (/_lab/) and Layer 7 without re-encryption use
it. The TLS port is what a balancer passing TLS through (Layer 4, SNI
passthrough) or re-encrypting to its backends (Layer 7, `tls.upstream`)
connects to, so the handshake the learner watches is a real one.

A backend says what each TLS connection was, so a test or a lesson can check
what reached it: every answer on the TLS port carries
`"tls": {"sni", "version", "resumed"}`, and GET /_lab/state counts the
handshakes (`tls`: listen, handshakes, resumed, by SNI name).
"""

from __future__ import annotations

import ssl
from json.encoder import encode_basestring_ascii as quote
from typing import Any, Final

MAX_NAMES: Final = 64  # SNI names counted one by one; further ones go under OTHERS
OTHERS: Final = "others"
NO_SNI: Final = "(none)"  # a client that sent no SNI (by IP address, say)


class TlsSetupError(Exception):
    """The certificate or key cannot serve: one line that names the file."""


def server_context(certificate: str, key: str) -> ssl.SSLContext:
    """A server context for the certificate chain and key files; TlsSetupError if unusable."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for path in (certificate, key):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:  # ssl's own error would not name the file
            raise TlsSetupError(f"cannot read {path}: {exc.strerror}") from None
    try:
        context.load_cert_chain(certificate, key)
    except ssl.SSLError as exc:
        mismatch = "KEY_VALUES_MISMATCH" in str(exc)
        why = f"{key} is not the private key of {certificate}" if mismatch else ""
        raise TlsSetupError(
            why or f"{certificate} and {key} are not a PEM certificate chain and its key ({exc})"
        ) from None
    context.sni_callback = _remember_sni
    return context


def _remember_sni(connection: Any, name: str | None, _context: ssl.SSLContext) -> None:
    # The server side of ssl has no getter for the name the client asked for: keep it on
    # the connection's SSLObject, read back once the handshake is done (`handshake`).
    connection.lab_sni = name


class Handshake:
    """What one TLS connection was: the name asked for, the version, a resumed session or not."""

    __slots__ = ("sni", "version", "resumed", "json")

    def __init__(self, sni: str | None, version: str | None, resumed: bool) -> None:
        self.sni = sni
        self.version = version
        self.resumed = resumed
        # The echo's fragment, formatted once per connection rather than once per request.
        sni_text = "null" if sni is None else quote(sni)
        version_text = "null" if version is None else quote(version)
        resumed_text = "true" if resumed else "false"
        self.json = f'{{"sni":{sni_text},"version":{version_text},"resumed":{resumed_text}}}'


def handshake(ssl_object: Any) -> Handshake | None:
    """The finished handshake of a transport's `ssl_object` extra (None: not TLS)."""
    if ssl_object is None:
        return None
    return Handshake(
        getattr(ssl_object, "lab_sni", None), ssl_object.version(), bool(ssl_object.session_reused)
    )


class TlsSeen:
    """The TLS listener's address and its handshakes: how many, how many resumed, by SNI."""

    def __init__(self) -> None:
        self.listen = ""
        self.reset()

    def reset(self) -> None:
        self.handshakes = 0
        self.resumed = 0
        self.by_sni: dict[str, int] = {}

    def record(self, done: Handshake) -> None:
        self.handshakes += 1
        self.resumed += done.resumed
        name = NO_SNI if done.sni is None else done.sni
        if name not in self.by_sni and len(self.by_sni) >= MAX_NAMES:
            name = OTHERS
        self.by_sni[name] = self.by_sni.get(name, 0) + 1

    def as_json(self) -> dict[str, Any]:
        return {
            "listen": self.listen,
            "handshakes": self.handshakes,
            "resumed": self.resumed,
            "sni": dict(self.by_sni),
        }
