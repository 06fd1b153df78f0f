"""Numbers and rare fields of the per-request events, written as JSON text without floats.

Route and done events happen for every request (lab.balancer.balancer writes
them with f-strings); these helpers keep their numbers cheap to print.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from lab.balancer.client_hello import ClientHello
    from lab.balancer.pool import Pool
    from lab.balancer.rules import Rule


# f"{x:.3f}" takes Python's exact float printer through big-number arithmetic, and
# even f"{n:03d}" parses a format spec, while every request's events need a time and
# a duration. Whole numbers print fast, and three decimals come from this table.
# Both numbers are never negative; the last digit may differ from the exact
# printer's by one, as the float was scaled before rounding.
THREE_DIGITS: Final = tuple(f"{n:03d}" for n in range(1000))


def millis_text(ms: float) -> str:
    """1.23456 -> "1.235": milliseconds to the microsecond."""
    micros: int = int(ms * 1000.0 + 0.5)
    return f"{micros // 1000}.{THREE_DIGITS[micros % 1000]}"


def micros_text(seconds: float) -> str:
    """1796000000.1234567 -> "1796000000.123457": seconds to the microsecond."""
    micros: int = int(seconds * 1_000_000.0 + 0.5)
    part = micros % 1_000_000
    return f"{micros // 1_000_000}.{THREE_DIGITS[part // 1000]}{THREE_DIGITS[part % 1000]}"


def route_extras(
    retry: int, pool: Pool, rule: Rule | None, sticky: bool, named: bool, upgrade: str
) -> str:
    """The route event's rarer fields: a retry, a pool and rule, a sticky pin, an upgrade."""
    text = f',"retry":{retry}' if retry else ""
    if named or rule is not None:
        text += f',"pool":"{pool.name}"'
    if rule is not None:
        text += f',"rule":"{rule.name}"'
    if sticky:
        text += ',"sticky":true'
    if upgrade:  # "websocket": a name of ours, never the client's text
        text += f',"upgrade":"{upgrade}"'
    return text


def passthrough_tls(hello: ClientHello) -> str:
    """The route event's `tls` field at Layer 4 passthrough: what the ClientHello said.

    The name is a checked host name (lab.balancer.client_hello) and the version one of
    ours, so neither can hold a quote. A hello that offers no resumption is a full
    handshake for certain; one that offers it may still be refused by the server, and
    the balancer never sees the answer, so `resumed` is left out then.
    """
    sni = f'"{hello.sni}"' if hello.sni is not None else "null"
    version = f'"{hello.version}"' if hello.version else "null"
    text = f',"tls":{{"sni":{sni},"version":{version},"terminated":false'
    if not hello.resumption:
        text += ',"resumed":false'
    return text + "}"
