"""HTTPS in the lab: the `set_tls` command turns termination, passthrough or plain on.

One command moves the three parts together, because HTTPS only works when
they agree:

- the balancer's `tls` table (lab.balancer.settings.TlsSettings) with the lab's
  own certificate and key (lab.certificates), and the layer the mode needs:
  terminate is Layer 7 (`mode = "http"`), passthrough is Layer 4 (`mode = "tcp"`);
- where the balancer reaches the backends: their TLS listeners when the bytes
  that reach them are TLS (passthrough, or termination with `upstream`
  re-encryption, verified against the lab's CA), else their plain ports;
- the traffic generator: HTTPS verified against the lab's CA, with an SNI mix
  (shop.lab.test and api.lab.test by default), or plain HTTP again.

The traffic is held while they change (as a lesson's setup holds it), so no
request meets a balancer and backends that disagree.
"""

from __future__ import annotations

from typing import Any

from lab.traffic.settings import SettingError, parse_sni_mix
from lab.web import actions
from lab.web.fields import CommandError

TLS_MODES = ("off", "terminate", "passthrough")
LAYER = {"terminate": "http", "passthrough": "tcp"}  # the balancer mode each one needs
TLS_AT = {mode: tls for tls, mode in LAYER.items()}  # and the HTTPS each layer does
DEFAULT_SNI_MIX = {"shop.lab.test": 3, "api.lab.test": 1}


def set_tls(lab: Any, tls: str, upstream: bool | None = None, sni_mix: str | None = None) -> None:
    """Turn HTTPS termination, passthrough or plain on, balancer, backends and traffic."""
    files = lab.certificates
    if files is None:
        raise CommandError("the lab has no certificates: it made none at start-up")
    if upstream and tls != "terminate":
        raise CommandError("upstream (re-encrypting to the backends) goes with tls terminate")
    if getattr(lab, "right", None) is not None:
        raise CommandError("close the comparison first: HTTPS is for one lab")
    mix = None
    if sni_mix is not None:  # checked before anything changes
        try:
            mix = parse_sni_mix("sni_mix", sni_mix)
        except SettingError as exc:
            raise CommandError(exc.message) from None
    reencrypt = tls == "terminate" and bool(upstream)
    to_tls = tls == "passthrough" or reencrypt
    missing = [r.name for r in lab.backends.values() if to_tls and not r.tls_address]
    if missing:
        raise CommandError(f"{', '.join(missing)} has no TLS listener: restart it first")
    table = tls_table(files, tls, reencrypt)
    change: dict[str, Any] = {"tls": table}
    if tls in LAYER:
        change["mode"] = LAYER[tls]
    traffic = lab.traffic_state()
    held = traffic is not None and not traffic["paused"]
    if held:
        actions.pause(lab)
    try:
        lab.put_config(change)
        lab.tls_mode = tls
        lab.tls_backends = to_tls
        for record in lab.backends.values():
            lab.balancer_api().call(
                "PUT", f"/backends/{record.name}", {"address": lab.balancer_address(record)}
            )
        if traffic is not None:
            _traffic_https(lab, tls != "off", traffic, mix)
    finally:
        if held:
            actions.resume(lab)


def set_mode(lab: Any, mode: str, side: str | None = None) -> None:
    """set_mode, keeping HTTPS on when it is: a learner who switches layers with HTTPS on
    sees the same traffic handled the other way, terminated at Layer 7 and passed
    through at Layer 4 (UDP carries no TLS here, so HTTPS goes off)."""
    if side in (None, "left") and getattr(lab, "tls_mode", "off") != "off":
        if mode in TLS_AT:
            set_tls(lab, TLS_AT[mode])
            return
        set_tls(lab, "off")
    actions.set_mode(lab, mode, side)


def tls_table(files: Any, tls: str, reencrypt: bool) -> dict[str, Any]:
    """The balancer's whole `tls` table for this mode, with the lab's files."""
    if tls == "off":
        return {"mode": "off", "upstream": False}
    return {
        "mode": tls,
        "certificate": str(files.certificate),
        "key": str(files.key),
        "upstream": reencrypt,
        "upstream_ca": str(files.ca),
    }


def _traffic_https(lab: Any, on: bool, traffic: dict, sni_mix: dict[str, int] | None) -> None:
    change: dict[str, Any] = {"tls": on}
    if sni_mix is not None:
        change["sni_mix"] = sni_mix
    elif on and not traffic.get("sni_mix"):
        change["sni_mix"] = DEFAULT_SNI_MIX
    actions.set_traffic(lab, **change)
    actions.reconnect_traffic(lab)  # kept-alive connections speak the old way


def https_flags(traffic: dict) -> list[str]:
    """The traffic generator's flags that bring back its HTTPS settings (a restart's)."""
    flags = []
    if traffic.get("sni_mix"):
        flags += ["--sni-mix", ",".join(f"{name}={w}" for name, w in traffic["sni_mix"].items())]
    if traffic.get("resumption") is False:
        flags += ["--resumption", "off"]
    if traffic.get("tls"):
        flags.append("--tls")
    return flags


def plain_again(lab: Any) -> None:
    """After a fresh balancer config (a lesson's setup): backends and traffic plain too."""
    lab.tls_mode = "off"
    lab.tls_backends = False
    traffic = lab.traffic_state()
    if traffic is not None and traffic.get("tls"):
        actions.set_traffic(lab, tls=False)


def curl_line(lab: dict) -> str:
    """The curl that reaches the lab over HTTPS, trusting the lab's own CA (once set_tls is on)."""
    files = lab.get("certificates")
    if not files:
        return ""
    host, _, port = lab["addresses"]["listen"].rpartition(":")
    name = "shop.lab.test"  # not in any DNS: --resolve points it at the balancer
    return (
        f"  curl --cacert {files['ca']} --resolve {name}:{port}:{host} "
        f"https://{name}:{port}/   # once HTTPS is on (set_tls)\n"
    )
