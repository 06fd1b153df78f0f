"""The SSL contexts the `tls` settings describe: one to terminate clients' TLS, one to
re-encrypt to backends (`tls.upstream`).

They are built when a config is checked (TOML, flags, live `PUT /config`), so a missing
file, a PEM that is not one, or a key that does not match its certificate is a
ConfigError naming the field, and the running balancer keeps its old config. The last
build is kept, keyed by the settings and the files' modification times, so checking and
then applying one config reads the files once.
"""

from __future__ import annotations

import os
import ssl

from lab.balancer.settings import ConfigError, TlsSettings

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TlsContexts:
    """What the balancer's TLS needs: `server` (None unless terminating) and `upstream`
    (None unless re-encrypting)."""

    def __init__(self, server: ssl.SSLContext | None, upstream: ssl.SSLContext | None) -> None:
        self.server = server
        self.upstream = upstream


NONE = TlsContexts(None, None)
_last: tuple[tuple, TlsContexts] | None = None


def contexts_for(tls: TlsSettings) -> TlsContexts:
    """The contexts for these settings; ConfigError naming the field that is wrong."""
    global _last
    if tls.mode != "terminate":
        return NONE
    key = (tls, _stamp(tls.certificate), _stamp(tls.key), _stamp(tls.upstream_ca))
    if _last is not None and _last[0] == key:
        return _last[1]
    built = TlsContexts(server_context(tls), upstream_context(tls) if tls.upstream else None)
    _last = (key, built)
    return built


def _stamp(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns if path else 0
    except OSError:
        return -1


def _readable(where: str, path: str, what: str) -> None:
    if not path:
        raise ConfigError(where, f"tls.mode terminate needs {what} (a PEM file path)")
    try:
        with open(path, "rb") as file:
            file.read(1)
    except OSError as exc:
        raise ConfigError(where, f"cannot read {path}: {exc.strerror}") from None


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """The context clients' handshakes use: the certificate chain and its key."""
    _readable("tls.certificate", tls.certificate, "a certificate")
    _readable("tls.key", tls.key, "a private key")
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:  # parses every certificate in the file, and says so when there is none
        probe.load_verify_locations(cafile=tls.certificate)
    except ssl.SSLError as exc:
        raise ConfigError(
            "tls.certificate", f"{tls.certificate} holds no PEM certificate ({exc.reason})"
        ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[tls.min_version]
    try:
        context.load_cert_chain(tls.certificate, tls.key)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            why = (
                f"the key does not match the certificate ({tls.key} is not the private key "
                f"of the first certificate in {tls.certificate})"
            )
        else:
            why = f"{tls.key} holds no PEM private key this balancer can use ({exc.reason})"
        raise ConfigError("tls.key", why) from None
    context.sni_callback = _note_sni
    return context


def _note_sni(sslobject: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
    """Keep the name the ClientHello asked for (a server-side SSLObject does not)."""
    sslobject.lab_sni = name  # type: ignore[attr-defined]


def sni_of(sslobject: ssl.SSLObject) -> str | None:
    return getattr(sslobject, "lab_sni", None)


def upstream_context(tls: TlsSettings) -> ssl.SSLContext:
    """The context for re-encrypting to backends, verifying them against `upstream_ca`."""
    if not tls.upstream_ca:
        raise ConfigError(
            "tls.upstream_ca",
            "tls.upstream needs the CA that signed the backends' certificates (a PEM file)",
        )
    _readable("tls.upstream_ca", tls.upstream_ca, "a CA certificate")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cafile=tls.upstream_ca)
    except ssl.SSLError as exc:
        raise ConfigError(
            "tls.upstream_ca", f"{tls.upstream_ca} holds no PEM certificate ({exc.reason})"
        ) from None
    return context


def tls_failure(exc: ssl.SSLError) -> str:
    """What went wrong in a handshake with a backend, as openssl says it."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    return str(exc.reason or exc)
