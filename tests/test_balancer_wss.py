"""WebSockets over HTTPS (wss://): the balancer terminates TLS, then tunnels the upgraded
connection to a plain `ws` backend, decrypting one way and encrypting the other."""

from __future__ import annotations

import socket

import pytest
from conftest import Lab, split
from test_balancer_websocket import echo  # noqa: F401  (its fixture)
from tls_helpers import make_pems

from lab.supervisor import Supervisor

websockets_sync = pytest.importorskip("websockets.sync.client")


@pytest.fixture
def wss_lab(echo, tmp_path):  # noqa: F811
    pems = make_pems(tmp_path)
    with Supervisor() as supervisor:
        lab = Lab(supervisor)
        lab.backends["ws"] = echo[1]
        flags = ["--tls", "terminate", "--tls-cert", str(pems.certificate)]
        lab.start_balancer(*flags, "--tls-key", str(pems.key))
        yield lab, pems
        for reader in lab._readers:
            reader.close()


def test_a_wss_tunnel_carries_messages_both_ways_and_says_it_was_encrypted(wss_lab):
    lab, pems = wss_lab
    events = lab.events()
    _, _, port = lab.listen.rpartition(":")
    sock = socket.create_connection(split(lab.listen), timeout=5)  # shop.lab.test, resolved
    with websockets_sync.connect(
        f"wss://shop.lab.test:{port}/chat", sock=sock, ssl=pems.client_context(),
        server_hostname="shop.lab.test", open_timeout=5, close_timeout=2, compression=None,
    ) as ws:  # fmt: skip
        for text in ["hello", "x" * 100_000, "last"]:  # one message spans many TLS records
            ws.send(text)
            assert ws.recv(timeout=5) == text
        route = events.wait("route", upgrade="websocket")
    assert route["tls"]["terminated"] is True and route["tls"]["sni"] == "shop.lab.test"
    done = events.wait("done", id=route["id"])
    assert done["status"] == 101
    # The decrypted bytes each way: the messages (framed) and the handshake.
    assert 100_000 < done["bytes"] < 101_000 and 100_000 < done["bytes_up"] < 101_000
