"""The lab as on a Mac, where only 127.0.0.1 can be bound: each simulated client names its
own address in a PROXY header, the lab's balancer reads it, and the lessons that depend on
distinct client addresses (hashing, source stickiness) still hold."""

from __future__ import annotations

import pytest
from conftest import EventReader, wait_for

from lab.lessons.catalog import Catalog
from lab.lessons.runner import Runner
from lab.web.app import create_app, socketio
from lab.web.client_addresses import by_proxy
from lab.web.controller import LabController, LabSettings


@pytest.fixture(scope="module")
def proxied():
    """A lab told to use PROXY headers even though this machine could bind 127.0.0.x."""
    settings = LabSettings(
        balancer_port=0, first_backend_port=0, paused=True, rate=5, seed=7, client_addresses="proxy"
    )
    controller = LabController(settings)
    controller.start()
    app = create_app({"TESTING": True, "ASYNC_MODE": "threading", "CONTROLLER": controller})
    page = socketio.test_client(app)
    # The lessons' runner reads the balancer's events from the start, as in test_lessons_run.
    runner = Runner(controller, lambda data: page.emit("command", data, callback=True))
    yield controller, page, runner
    runner.close()
    page.disconnect()
    controller.close()


def test_auto_binds_where_it_can_and_the_choices_are_kept():
    assert by_proxy("auto") is False  # Linux: 127.0.0.2 can be bound here
    assert by_proxy("proxy") is True and by_proxy("bind") is False


def test_the_clients_say_who_they_are_and_the_balancer_believes_them(proxied):
    controller, page, _ = proxied
    state = controller.snapshot()
    assert state["traffic"]["client_addresses"] == "proxy-v2"
    balancer = controller.balancer_api().call("GET", "/state")
    assert balancer["settings"]["proxy_protocol"]["accept"] is True
    events = EventReader(controller.addresses["admin"])
    try:
        answer = page.emit("command", {"action": "send", "count": 8}, callback=True)
        assert answer == {"ok": True}, answer
        routes = wait_for(lambda: events.of("route")[7:] and events.of("route"), what="8 routes")
        # Four clients, four addresses, though every connection came from 127.0.0.1.
        assert {r["client"] for r in routes} == {f"127.0.0.{k}" for k in range(2, 6)}
    finally:
        events.close()


# layer-4-and-layer-7: two proxies for real, the generator's header passed on by send.
@pytest.mark.parametrize("slug", ["hashing", "sticky-sessions", "layer-4-and-layer-7"])
def test_lessons_on_client_addresses_hold_with_proxy_headers(proxied, slug):
    controller, _, runner = proxied
    run = runner.run(Catalog().get(slug))
    assert run.ok, run.report()
    assert any(o.kind == "expect" for o in run.outcomes)
    # A lesson's fresh balancer config kept reading the headers.
    state = controller.balancer_api().call("GET", "/state")
    assert state["settings"]["proxy_protocol"]["accept"] is True
