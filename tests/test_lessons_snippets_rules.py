"""Pools and routing rules in the real-world configs: one upstream or backend per pool,
and an nginx `map` that picks, for every request, the pool the balancer's own rules pick.

The configs are test_lessons_snippets.py's (EVERYTHING holds every pool and rule).
"""

from __future__ import annotations

import re

import pytest
from test_lessons_snippets import EVERYTHING, RULES

from lab.lessons.snippets import snippets


def test_pools_and_rules_read_as_upstreams_a_map_acls_and_use_backend():
    nginx, haproxy = snippets(EVERYTHING).values()
    for pool in ("lab_api", "lab_static", "lab_canary"):
        assert f"upstream {pool} {{" in nginx and f"backend {pool}\n" in haproxy
    assert "upstream lab_api {\n    hash $http_x_user consistent;" in nginx
    assert "backend lab_canary\n    mode http\n    balance random(1)" in haproxy
    assert "proxy_pass http://$lab_pool;" in nginx
    assert "# (location blocks would take the longest prefix instead)" in nginx
    for line in (
        "acl canary req.hdr(x-canary) -m str 1",
        "acl beta_cookie req.cook(beta) -m str yes",
        "acl beta_method method GET",
        "acl debug req.hdr(x-debug) -m found",
        "acl admin_path_prefix path_beg /admin",
        "acl admin_host req.hdr(host),field(1,:) -m str -i admin.example",
        "acl rule8 path_beg /static",
        "use_backend lab_canary if beta_cookie beta_method",
        "use_backend lab_api if admin_path_prefix admin_host",
        "default_backend lab",
    ):
        assert f"    {line}\n" in haproxy, line
    uses = [line.split()[1] for line in haproxy.splitlines() if "use_backend" in line]
    assert uses == ["lab_canary"] * 4 + ["lab_api"] * 2 + ["lab_static"] * 2 + ["lab_api"]


REQUESTS = [
    {"path": "/", "headers": {}, "cookies": {}},
    {"path": "/api/items", "headers": {"x-canary": "1"}, "cookies": {}},
    {"path": "/api/items", "headers": {"x-canary": "2"}, "cookies": {}},
    {"path": "/api/v2/x", "headers": {}, "cookies": {}},
    {"path": "/static/app.js", "headers": {}, "cookies": {"beta": "yes"}},
    {"path": "/static/app.js", "method": "POST", "headers": {}, "cookies": {"beta": "yes"}},
    {"path": "/static/app.js", "method": "POST", "headers": {}, "cookies": {"beta": "no"}},
    {"path": "/", "headers": {"x-debug": "on"}, "cookies": {}},
    {"path": "/", "headers": {}, "cookies": {"tester": "1"}},
    {"path": "/admin/x", "headers": {"host": "admin.example:8080"}, "cookies": {}},
    {"path": "/admin/x", "headers": {"host": "shop.example"}, "cookies": {}},
    {"path": "/login", "method": "POST", "headers": {}, "cookies": {}},
]


@pytest.mark.parametrize("request_", REQUESTS, ids=[str(i) for i in range(len(REQUESTS))])
def test_the_nginx_map_picks_the_pool_the_balancers_rules_pick(request_):
    from lab.balancer.algorithms import RequestInfo
    from lab.balancer.rules import match, parse_rules

    rules = parse_rules(RULES, {"default", "api", "static", "canary"})
    method = request_.get("method", "GET")
    headers = {"host": "127.0.0.1:8080", **request_["headers"]}
    info = RequestInfo("127.0.0.2", method, request_["path"], headers, request_["cookies"])
    rule = match(rules, info)
    wanted = "lab" if rule is None else f"lab_{rule.pool}"

    nginx = snippets(EVERYTHING)["nginx"]
    head, _, body = nginx.partition('map "')
    key_names, _, body = body.partition('" $lab_pool {')
    values = {
        "$request_uri": request_["path"],
        "$host": headers["host"].split(":")[0].lower(),
        "$request_method": method,
    }
    for name, value in request_["headers"].items():
        values["$http_" + name.replace("-", "_")] = value
    for name, value in request_["cookies"].items():
        values["$cookie_" + name] = value
    key = "|".join(values.get(name, "") for name in key_names.split("|"))
    chosen = "lab"
    for line in body.split("}")[0].strip().splitlines():
        pattern, upstream = line.split(";")[0].strip().rsplit(" ", 1)
        if pattern.startswith('"~') and re.search(pattern.strip('"')[1:], key):
            chosen = upstream
            break
    assert chosen == wanted, (key, wanted)
