"""The web app serves the page and its assets offline, and talks only to its own origin."""

from __future__ import annotations

import pytest

from lab.web.app import asset_root, create_app

POLL = "/socket.io/?EIO=4&transport=polling"


@pytest.fixture
def http():
    return create_app({"TESTING": True, "ASYNC_MODE": "threading"}).test_client()


def test_the_page_loads_its_scripts_from_this_server_only(http):
    page = http.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Load Balancing Lab" in html
    assert "/static/vendor/socket.io/socket.io.min.js" in html
    assert "/static/js/main.js" in html
    assert "https://" not in html and "http://" not in html  # no CDN: works offline


def test_the_vendored_socket_io_client_ships_with_its_licence(http):
    script = http.get("/static/vendor/socket.io/socket.io.min.js")
    assert script.status_code == 200
    assert b"Socket.IO v4." in script.data[:200]
    assert (
        (asset_root() / "static" / "vendor" / "socket.io" / "LICENSE")
        .read_text()
        .startswith("The MIT License")
    )


def test_every_module_the_page_imports_is_served(http):
    for name in ("main", "scene", "charts", "log", "palette"):
        assert http.get(f"/static/js/{name}.js").status_code == 200


def test_socket_io_answers_its_own_page(http):
    same = http.get(POLL, headers={"Origin": "http://localhost", "Host": "localhost"})
    assert same.status_code == 200


def test_socket_io_refuses_another_site(http):
    other = http.get(POLL, headers={"Origin": "http://evil.example", "Host": "localhost"})
    assert other.status_code == 400


def test_a_page_reached_by_another_name_is_refused(http):
    # DNS rebinding: evil.example resolves to 127.0.0.1, so the browser calls it same-origin.
    rebound = {"Origin": "http://evil.example:5000", "Host": "evil.example:5000"}
    assert http.get(POLL, headers=rebound).status_code == 421
    assert http.get("/", headers={"Host": "evil.example"}).status_code == 421
    assert http.get("/", headers={"Host": "127.0.0.1:5000"}).status_code == 200


def test_the_app_under_test_never_loads_eventlet():
    import sys

    create_app({"TESTING": True, "ASYNC_MODE": "threading"})
    assert "eventlet" not in sys.modules
