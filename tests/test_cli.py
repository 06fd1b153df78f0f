"""The `lb-lab` command line: every subcommand has --help, and a bad value is one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest


def lb_lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=30
    )


def test_help_lists_the_commands():
    result = lb_lab("--help")
    assert result.returncode == 0
    for command in ("serve", "balancer", "backend", "bench", "service", "web"):
        assert command in result.stdout


@pytest.mark.parametrize("command", ["serve", "balancer", "backend", "bench", "service", "web"])
def test_every_command_has_help(command):
    result = lb_lab(command, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["balancer", "--algorithm", "fastest"], "unknown algorithm 'fastest'"),
        (["balancer", "--backend", "b1"], "expected NAME=HOST:PORT"),
        (["balancer", "--backend", "b1=127.0.0.1:9001,weight=0"], "weight must be 1-256"),
        (["balancer", "--listen", "127.0.0.1:http"], "port must be 0-65535"),
        (["balancer", "--mode", "sctp"], "invalid choice: 'sctp'"),
        (["balancer", "--hash-key", "header:"], "hash_key"),
        (["balancer", "--config", "/nonexistent.toml"], "cannot read /nonexistent.toml"),
        (["balancer", "--colour", "blue"], "unrecognized arguments: --colour"),
        (["serve", "--backends", "40"], "--backends must be 1-12"),
        (["serve", "--algorithm", "fastest"], "unknown algorithm 'fastest'"),
        (["service", "--algorithm", "fastest"], "unknown algorithm 'fastest'"),
        (["serve", "--compare", "round-robin"], "expected two algorithms, LEFT,RIGHT"),
        (["service", "--compare", "random,fastest"], "--compare: unknown algorithm 'fastest'"),
        (
            ["traffic", "--target", "http://127.0.0.1:1/", "--target", "http://127.0.0.1:2/"]
            + ["--target", "http://127.0.0.1:3/"],
            "at most two targets",
        ),
        (["service", "--api", "localhost"], "--api: expected HOST:PORT"),
        (["service", "--api", "0.0.0.0:0"], "--api: the lab service listens on loopback only"),
        (["web"], "the following arguments are required: --lab"),
        (["web", "--lab", "http://127.0.0.1:7000/stream"], "--lab: expected the lab service's"),
    ],
)
def test_bad_values_exit_2_with_one_clear_line(args, message):
    result = lb_lab(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_balancer_reports_a_busy_port_clearly(lab):
    lab.start_balancer()
    result = lb_lab("balancer", "--listen", lab.listen, "--admin", "127.0.0.1:0")
    assert result.returncode == 1
    assert "address already in use" in result.stderr.lower()
