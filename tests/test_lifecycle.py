"""The lab never leaves an orphan: its children die with it, however it dies.

`lb-lab serve` has one child, the lab service, whose children are the lab's
processes; both layers are checked.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import pytest
from conftest import split, wait_for


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def descendants(pid: int) -> list[int]:
    found = []
    for child in children_of(pid):
        found += [child, *descendants(child)]
    return found


def role(pid: int) -> str:
    """What a lab process is: `python -m lab ROLE ...` -> ROLE."""
    with open(f"/proc/{pid}/cmdline") as cmdline:
        args = cmdline.read().split("\0")
    return args[args.index("lab") + 1]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def refuses(address: str) -> bool:
    try:
        socket.create_connection(split(address), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


QUIET = ["--paused", "--balancer-port", "0"]


@pytest.fixture
def running_lab():
    process = subprocess.Popen(
        # Paused traffic: the first request below must be the first the balancer sees.
        [sys.executable, "-m", "lab", "serve", "--port", "0", "--backends", "2", *QUIET],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ""
    for line in process.stdout:
        output += line
        if "Press Ctrl-C" in line:
            break
    listen = re.search(r"curl -i http://(\S+)/", output).group(1)
    page = re.search(r"Load Balancing Lab: http://(\S+)/", output).group(1)
    service = re.search(r"service: +http://(\S+)/", output).group(1)
    children = descendants(process.pid)
    yield process, listen, children
    if process.poll() is not None:  # however it ended, no port of the lab is still bound
        assert refuses(page) and refuses(service)
    if process.poll() is None:
        process.kill()
    process.wait()
    for pid in children:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_serve_starts_backends_and_a_balancer(running_lab):
    process, listen, children = running_lab
    [service] = children_of(process.pid)
    assert role(service) == "service"
    roles = sorted(role(pid) for pid in children_of(service))
    assert roles == ["backend", "backend", "balancer", "traffic"]
    assert set(children) == {service, *children_of(service)}
    with socket.create_connection(split(listen), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
        assert b"X-Backend: b1" in sock.recv(65536)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_lab_stops_everything(running_lab, sig):
    process, listen, children = running_lab
    process.send_signal(sig)
    assert process.wait(10) == 0
    assert not any(alive(pid) for pid in children)
    assert refuses(listen)


def test_children_exit_when_the_lab_is_killed(running_lab):
    process, listen, children = running_lab
    process.kill()  # SIGKILL: the lab gets no chance to clean up
    process.wait()
    wait_for(lambda: not any(alive(pid) for pid in children), timeout=5, what="orphans to exit")
    assert refuses(listen)


def test_a_killed_service_takes_the_lab_with_it_and_the_page_stops(running_lab):
    process, listen, children = running_lab
    [service] = children_of(process.pid)
    os.kill(service, signal.SIGKILL)
    assert process.wait(10) == 1
    assert "the lab service exited unexpectedly" in process.stdout.read()
    wait_for(lambda: not any(alive(pid) for pid in children), timeout=5, what="orphans to exit")
    assert refuses(listen)


def test_a_lab_whose_balancer_dies_says_so_and_stops(running_lab):
    process, listen, children = running_lab
    [balancer] = [pid for pid in children if role(pid) == "balancer"]
    os.kill(balancer, signal.SIGKILL)
    assert process.wait(10) == 1
    said = process.stdout.read()
    assert "lb-lab: the balancer process exited unexpectedly; stopping" in said
    assert "the lab service exited unexpectedly" not in said
    wait_for(lambda: not any(alive(pid) for pid in children), timeout=5, what="orphans to exit")
