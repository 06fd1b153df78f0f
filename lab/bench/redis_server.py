"""A throwaway Redis server on a free loopback port, for the benchmark and the tests.

`lb-lab serve --message-queue` uses a Redis the user runs; `lb-lab bench --viewers`
and the tests start their own (Debian's `redis-server`), keep nothing on disk,
and stop it when they are done.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

from lab.bench.tether import tethered

START_TIMEOUT_S = 10.0


class RedisError(RuntimeError):
    """No redis-server here, or it did not start; the message says which."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(port: int) -> bool:
    """True once the server says PONG to a PING (plain RESP, no client library needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """`with RedisServer() as redis: redis.url` -> redis://127.0.0.1:PORT/0, stopped on exit."""

    def __init__(self, program: str = "redis-server") -> None:
        self.program = program
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        path = shutil.which(self.program)
        if path is None:
            raise RedisError(f"{self.program} is not installed (apt-get install redis-server)")
        self.port = free_port()
        argv = [path, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]  # fmt: skip
        self.process = subprocess.Popen(
            tethered(argv),  # dies with us, even if we are SIGKILLed
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                said = self._stop_and_read()
                raise RedisError(f"redis-server did not start on port {self.port}: {said}")
            time.sleep(0.05)
        return self

    def _stop_and_read(self) -> str:
        process = self.process
        if process is None:
            return ""
        if process.poll() is None:
            process.terminate()
        try:
            out, _ = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        return (out or b"").decode(errors="replace").strip()[-500:]

    def stop(self) -> None:
        self._stop_and_read()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
