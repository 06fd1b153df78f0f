"""Whole nginx.conf and haproxy.cfg files around a generated snippet, so `nginx -t` and
`haproxy -c` can check it (the tests, where those tools are installed)."""

from __future__ import annotations

from lab.lessons.snippet_rules import UPSTREAM


def nginx_config(snippet: str, mode: str, folder: str, stream_module: str | None = None) -> str:
    """A whole nginx.conf around a snippet, for `nginx -t`.

    A Layer 4 snippet needs the stream module; without one (`stream_module` None)
    its upstream block is checked inside http { }, where the same directives are valid.
    A snippet with routing rules brings its own server { }.
    """
    layer4 = mode in ("tcp", "udp")
    head = f"load_module {stream_module};\n" if stream_module and layer4 else ""
    head += (
        f"worker_processes 1;\nerror_log {folder}/error.log;\npid {folder}/nginx.pid;\n"
        "events { worker_connections 64; }\n"
    )
    temp = "".join(
        f"    {kind}_temp_path {folder}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    if layer4 and stream_module:
        server = f"    server {{ listen 127.0.0.1:8080; proxy_pass {UPSTREAM}; }}\n"
        if "server {" in snippet:  # mode udp (or PROXY headers) brings its own listener
            server = ""
        return head + f"stream {{\n{snippet}\n{server}}}\n"
    server = (
        "    server {\n        listen 127.0.0.1:8080;\n        location / {\n"
        f"            proxy_pass http://{UPSTREAM};\n            proxy_http_version 1.1;\n"
        '            proxy_set_header Connection "";\n        }\n    }\n'
    )
    if "server {" in snippet:
        server = ""
    return head + f"http {{\n    access_log off;\n{temp}{snippet}\n{server}}}\n"


def haproxy_config(snippet: str, mode: str) -> str:
    """A whole haproxy.cfg around a snippet, for `haproxy -c`."""
    frontend = (
        ""
        if "frontend " in snippet
        else f"frontend lab_in\n    bind 127.0.0.1:8080\n    default_backend {UPSTREAM}\n\n"
    )
    return (
        "global\n    maxconn 256\n\n"
        f"defaults\n    mode {mode}\n    timeout connect 3s\n    timeout client 30s\n"
        f"    timeout server 30s\n\n{frontend}{snippet}\n"
    )
