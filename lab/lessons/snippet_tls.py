"""HTTPS in the generated configs: TLS terminated at the listener, or passed through by SNI.

The lab's `tls` table (lab.balancer.settings.TlsSettings) as the peers write it:

- `mode = "terminate"` (Layer 7): nginx `listen ... ssl` with `ssl_certificate`,
  `ssl_certificate_key` and `ssl_protocols` from `min_version`; HAProxy
  `bind ... ssl crt FILE ssl-min-ver`, where FILE holds the certificate and its
  key together (HAProxy wants one PEM; the lab writes it as combined.pem). Both
  tell the backends the request came over HTTPS (X-Forwarded-Proto), as the lab does.
- `upstream` (re-encryption): nginx `proxy_pass https://` with `proxy_ssl_verify on`
  and `proxy_ssl_trusted_certificate`; HAProxy `server ... ssl verify required
  ca-file`, both against `upstream_ca`.
- `mode = "passthrough"` (Layer 4): nginx `stream { }` with `ssl_preread on` and a
  `map $ssl_preread_server_name` to the pool; HAProxy `mode tcp` that waits for the
  ClientHello (`tcp-request inspect-delay`, `tcp-request content accept if
  { req_ssl_hello_type 1 }`) and then `use_backend ... if { req.ssl_sni -i NAME }`.
  Neither holds a key: the bytes pass through untouched.

Rules with an `sni` condition ("shop.lab.test", or "*.lab.test" for any name under
it) route in passthrough; `no_sni_pool` takes a hello without SNI ("" closes it).
"""

from __future__ import annotations

import re

from lab.lessons.snippet_rules import UPSTREAM, Pool

SNI_VARIABLE = "$lab_sni_pool"
COMBINED_NOTE = "HAProxy wants the certificate and its key in one PEM file (certificate first)"
INSPECT_DELAY = "5s"  # how long HAProxy waits for the ClientHello before deciding


def table(config: dict) -> dict:
    return config.get("tls") or {}


def mode(config: dict) -> str:
    """The tls mode, where the balancer's mode allows it (terminate at http, passthrough at tcp)."""
    tls = table(config).get("mode", "off")
    layer = config.get("mode", "http")
    if (tls, layer) in (("terminate", "http"), ("passthrough", "tcp")):
        return tls
    return "off"


def upstream(config: dict) -> bool:
    return mode(config) == "terminate" and bool(table(config).get("upstream"))


def combined_file(certificate: str) -> str:
    """Where the lab keeps certificate + key in one file: combined.pem beside cert.pem."""
    folder, slash, _ = certificate.rpartition("/")
    return f"{folder}{slash}combined.pem" if certificate else "/etc/haproxy/lab.pem"


def _protocols(config: dict) -> str:
    return "TLSv1.3" if table(config).get("min_version") == "1.3" else "TLSv1.2 TLSv1.3"


def _sni_rules(config: dict, pools: list[Pool]) -> list[tuple[str, str, str]]:
    """(rule name, SNI pattern, upstream) for each rule that routes on the SNI name."""
    upstreams = {p.name: p.upstream for p in pools}
    found = []
    for i, rule in enumerate(config.get("rules") or []):
        if rule.get("sni"):
            name = rule.get("name") or f"rule{i + 1}"
            target = upstreams.get(rule["pool"], f"{UPSTREAM}_{rule['pool']}")
            found.append((name, rule["sni"].lower(), target))
    return found


def _no_sni_upstream(config: dict, pools: list[Pool]) -> str:
    pool = table(config).get("no_sni_pool") or ""
    if not pool:
        return ""
    return {p.name: p.upstream for p in pools}.get(pool, f"{UPSTREAM}_{pool}")


# -- nginx --------------------------------------------------------------------------------


def nginx_lines(config: dict, snippet: list[str], pools: list[Pool]) -> list[str]:
    """The snippet with HTTPS: an ssl listener, re-encryption, or an ssl_preread router."""
    tls = mode(config)
    if tls == "terminate":
        return _nginx_terminate(config, snippet)
    if tls == "passthrough":
        return _nginx_passthrough(config, snippet, pools)
    return snippet


def _nginx_ssl(config: dict) -> list[str]:
    tls = table(config)
    return [
        f"    ssl_certificate {tls.get('certificate') or '/etc/nginx/lab.pem'};",
        f"    ssl_certificate_key {tls.get('key') or '/etc/nginx/lab.key'};",
        f"    ssl_protocols {_protocols(config)};  # tls.min_version "
        f"{tls.get('min_version', '1.2')}",
    ]


def _nginx_terminate(config: dict, snippet: list[str]) -> list[str]:
    listen = config.get("listen", "127.0.0.1:8080")
    lines = list(snippet)
    if upstream(config):  # at http { } level: every proxy_pass below verifies its backend
        ca = table(config).get("upstream_ca") or "/etc/nginx/lab-ca.pem"
        lines += [
            "# tls.upstream: TLS again to the backends, verified against the lab's CA",
            f"proxy_ssl_trusted_certificate {ca};",
            "proxy_ssl_verify on;",
            "proxy_ssl_name localhost;  # a name the backends' certificate carries",
        ]
        lines = [line.replace("proxy_pass http://", "proxy_pass https://") for line in lines]
    scheme = "https" if upstream(config) else "http"
    listening = re.compile(rf"^    listen {re.escape(listen)}( .*)?;$")
    at = next((i for i, line in enumerate(lines) if listening.match(line)), None)
    if at is not None:  # a server { } of its own already (rules, PROXY headers): make it ssl
        flags = listening.match(lines[at]).group(1) or ""  # type: ignore[union-attr]
        ssl = [f"    listen {listen} ssl{flags};", *_nginx_ssl(config)]
        forwarded = "    proxy_set_header X-Forwarded-Proto $scheme;  # https, as the lab says"
        return [*lines[:at], *ssl, forwarded, *lines[at + 1 :]]
    return [
        *lines,
        "# the listener: TLS ends here (tls.mode terminate); plain HTTP to the backends"
        if scheme == "http"
        else "# the listener: TLS ends here (tls.mode terminate), and starts again upstream",
        "server {",
        f"    listen {listen} ssl;",
        *_nginx_ssl(config),
        "    location / {",
        f"        proxy_pass {scheme}://{UPSTREAM};",
        "        proxy_http_version 1.1;",
        '        proxy_set_header Connection "";',
        "        proxy_set_header X-Forwarded-Proto $scheme;  # https, as the lab adds",
        "    }",
        "}",
    ]


def _nginx_passthrough(config: dict, snippet: list[str], pools: list[Pool]) -> list[str]:
    listen = config.get("listen", "127.0.0.1:8080")
    rules = _sni_rules(config, pools)
    default = pools[0].upstream if pools else UPSTREAM
    # A server { } of PROXY headers' (lab.lessons.snippet_proxy) gives way to this one,
    # keeping what it says about them.
    kept = [line for line in snippet if line.strip() == "proxy_protocol on;"]
    flags = (
        " proxy_protocol" if any(f"{listen} proxy_protocol;" in line for line in snippet) else ""
    )
    lines = _without_server(snippet)
    mapping = [
        "# passthrough: only the ClientHello's SNI name is read (ssl_preread), never decrypted",
        f"map $ssl_preread_server_name {SNI_VARIABLE} {{",
        "    hostnames;  # *.suffix names, as the lab's sni rules write them",
    ]
    mapping += [f"    {pattern} {target};  # rule {name}" for name, pattern, target in rules]
    no_sni = _no_sni_upstream(config, pools)
    if no_sni:
        mapping.append(f'    "" {no_sni};  # a hello without SNI: tls.no_sni_pool')
    else:
        mapping.append("    # a hello without SNI goes to the default (the lab closes it instead)")
    mapping += [f"    default {default};", "}"]
    server = [
        "server {",
        f"    listen {listen}{flags};",
        "    ssl_preread on;",
        f"    proxy_pass {SNI_VARIABLE};  # the bytes pass untouched: no certificate here",
        *[f"    {line.strip()}" for line in kept],
        "}",
    ]
    return [*lines, *mapping, *server]


def _without_server(snippet: list[str]) -> list[str]:
    """The snippet without its own server { } block (passthrough brings its own)."""
    out, depth = [], 0
    for line in snippet:
        if depth == 0 and line == "server {":
            depth = 1
            continue
        if depth:
            depth += line.count("{") - line.count("}")
            continue
        out.append(line)
    return out


# -- HAProxy ------------------------------------------------------------------------------


def haproxy_lines(config: dict, snippet: list[str], pools: list[Pool]) -> list[str]:
    """The snippet with HTTPS: `bind ... ssl crt`, or a frontend that routes on req.ssl_sni."""
    tls = mode(config)
    if tls == "terminate":
        return _haproxy_terminate(config, snippet)
    if tls == "passthrough":
        return _haproxy_passthrough(config, snippet, pools)
    return snippet


def _haproxy_bind_ssl(config: dict) -> str:
    crt = combined_file(table(config).get("certificate", ""))
    version = "TLSv1.3" if table(config).get("min_version") == "1.3" else "TLSv1.2"
    return f" ssl crt {crt} ssl-min-ver {version}"


def _haproxy_terminate(config: dict, snippet: list[str]) -> list[str]:
    listen = config.get("listen", "127.0.0.1:8080")
    note = f"    # crt: {COMBINED_NOTE}: the lab's combined.pem"
    proto = "    http-request set-header X-Forwarded-Proto https  # as the lab adds"
    lines = list(snippet)
    at = next((i for i, line in enumerate(lines) if line.startswith(f"    bind {listen}")), None)
    if at is not None:  # the rules' (or PROXY headers') own frontend
        lines[at : at + 1] = [lines[at] + _haproxy_bind_ssl(config), note]
        # After its tcp-request lines: HAProxy runs those first wherever they stand.
        routing = ("    acl ", "    use_backend ", "    default_backend ")
        end = next(i for i in range(at, len(lines)) if lines[i].startswith(routing))
        lines.insert(end, proto)
    else:
        lines = [
            "frontend lab_in  # TLS ends here (tls.mode terminate)",
            f"    bind {listen}{_haproxy_bind_ssl(config)}",
            note,
            "    mode http",
            proto,
            f"    default_backend {UPSTREAM}",
            "",
            *lines,
        ]
    return [_haproxy_server_ssl(config, line) for line in lines]


def _haproxy_server_ssl(config: dict, line: str) -> str:
    """A `server` line that re-encrypts to its backend (tls.upstream)."""
    if not upstream(config) or not line.startswith("    server "):
        return line
    ca = table(config).get("upstream_ca") or "/etc/haproxy/lab-ca.pem"
    return f"{line} ssl verify required ca-file {ca}"


def _haproxy_passthrough(config: dict, snippet: list[str], pools: list[Pool]) -> list[str]:
    listen = config.get("listen", "127.0.0.1:8080")
    start = next((i for i, line in enumerate(snippet) if line.startswith("frontend ")), None)
    accept_proxy = ""
    lines = list(snippet)
    if start is not None:  # a frontend already (PROXY headers): this one replaces it
        end = lines.index("", start) if "" in lines[start:] else len(lines)
        accept_proxy = " accept-proxy" if "accept-proxy" in "".join(lines[start:end]) else ""
        lines = lines[:start] + lines[end + 1 :]
    frontend = [
        "frontend lab_in  # passthrough: routes on the ClientHello's SNI, never decrypts",
        f"    bind {listen}{accept_proxy}",
        "    mode tcp",
        f"    tcp-request inspect-delay {INSPECT_DELAY}  # wait for the ClientHello",
        "    tcp-request content accept if { req_ssl_hello_type 1 }",
    ]
    no_sni = _no_sni_upstream(config, pools)
    if not no_sni:  # the lab closes a hello without SNI when no pool is named for it
        frontend.insert(-1, "    tcp-request content reject if !{ req.ssl_sni -m found }")
    for name, pattern, target in _sni_rules(config, pools):
        test = f"-m end -i {pattern[1:]}" if pattern.startswith("*.") else f"-i {pattern}"
        frontend.append(f"    use_backend {target} if {{ req.ssl_sni {test} }}  # rule {name}")
    if no_sni:
        frontend.append(f"    use_backend {no_sni} if !{{ req.ssl_sni -m found }}  # no_sni_pool")
    frontend += [f"    default_backend {pools[0].upstream if pools else UPSTREAM}", ""]
    return [*frontend, *lines]
