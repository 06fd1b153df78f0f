"""The balancer config's HTTPS checks: what the `tls` table needs from the rest of it.

Termination is for a Layer 7 balancer and needs certificate files that load
(lab.balancer.tls_context builds them, once per change); passthrough is Layer 4,
routes on the server name only, and its no-SNI pool must exist. Kept apart from
lab.balancer.config, which calls them from its whole-config check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.balancer.rules import DEFAULT_POOL
from lab.balancer.settings import ConfigError
from lab.balancer.tls_context import contexts_for

if TYPE_CHECKING:
    from lab.balancer.config import BalancerConfig


def check_tls(config: BalancerConfig) -> None:
    """Termination needs Layer 7, and certificate files that load (see tls_context)."""
    tls = config.tls
    if tls.mode == "terminate":
        if config.mode != "http":
            raise ConfigError(
                "tls.mode",
                f"terminate needs Layer 7 (mode http), not mode {config.mode}: decrypting is "
                'for a balancer that reads HTTP; at Layer 4 use "passthrough"',
            )
        contexts_for(tls)  # raises ConfigError naming the file's field
    elif tls.upstream:
        raise ConfigError(
            "tls.upstream",
            "re-encrypting to the backends needs tls.mode terminate: the balancer "
            "encrypts again only what it decrypted",
        )


def check_passthrough(config: BalancerConfig) -> None:
    """TLS passthrough: Layer 4 TCP, rules on the server name only, a real no-SNI pool."""
    tls = config.tls
    if tls.no_sni_pool and tls.no_sni_pool not in {DEFAULT_POOL, *(p.name for p in config.pools)}:
        raise ConfigError("tls.no_sni_pool", f"no pool named {tls.no_sni_pool!r}")
    if tls.mode != "passthrough":
        return
    if config.mode != "tcp":
        raise ConfigError(
            "tls.mode",
            'passthrough is Layer 4: it needs mode = "tcp" (the balancer pipes the encrypted '
            'bytes; to decrypt and route on HTTP, use tls.mode = "terminate" with mode = "http")',
        )
    for i, rule in enumerate(config.rules):
        sees = rule.layer_7_only()
        if sees is not None:
            raise ConfigError(
                f"rules[{i}]",
                f"encrypted: a Layer 4 balancer cannot see {sees}; in passthrough it reads "
                "only the ClientHello's server name (use sni or host)",
            )
