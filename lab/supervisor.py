"""Start lab daemons as child processes (exec, never bare fork) and stop every one of them.

Used by `lb-lab serve`, the benchmark and the tests. Children are started with
port 0 where the caller allows it and report the address they really bound,
so two labs on one machine never race for a port.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from lab.lifecycle import PARENT_ENV, READY_PREFIX

START_TIMEOUT_S = 10.0


class StartError(RuntimeError):
    """A child exited or stayed silent instead of reporting that it was ready."""


@dataclass
class Child:
    """One running lab daemon."""

    name: str
    argv: list[str]
    process: subprocess.Popen
    addresses: dict[str, str] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)
    ready: bool = False
    echo: Callable[[str], None] | None = None  # given each line the child prints once ready
    # Set once every line the child printed has been read (it has exited, or was stopped).
    drained: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


def lab_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lab", *args]


class Supervisor:
    """Owns a set of children; `stop_all` (or leaving the `with` block) ends them all."""

    def __init__(self) -> None:
        self.children: dict[str, Child] = {}
        # Every child is forked from this one long-lived thread. A child asks the kernel
        # for SIGTERM when its parent dies (lab.lifecycle), and to the kernel the parent
        # is the *thread* that forked it: a child started from a command's short-lived
        # thread would be stopped the moment that command finished.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        args: list[str],
        timeout: float = START_TIMEOUT_S,
        echo: Callable[[str], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> Child:
        """Start `lb-lab <args>` and wait for its ready line; `echo` what it prints after.

        `env` adds to the environment: a secret passed there stays out of `ps`.
        """
        if name in self.children and self.children[name].alive():
            raise StartError(f"{name} is already running")
        own = {PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
        env = dict(os.environ, **(env or {}), **own)
        argv = lab_command(*args)
        process = self._spawner.submit(
            subprocess.Popen,
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            # A Ctrl-C in the terminal goes to the lab alone, which then stops us in order.
            start_new_session=True,
        ).result()
        child = Child(name, argv, process, echo=echo)
        self.children[name] = child
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(child, lines), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.stop(name)
                raise StartError(f"{name} did not report ready within {timeout:.0f}s") from None
            if line is None:
                process.wait()
                raise StartError(f"{name} exited: {''.join(child.output[-5:]).strip()}")
            if line.startswith(READY_PREFIX):
                child.addresses = json.loads(line[len(READY_PREFIX) :])
                return child

    def stop(self, name: str, timeout: float = 5.0) -> None:
        child = self.children.get(name)
        if child is None:
            return
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        _close_output(child)

    def kill(self, name: str) -> None:
        """A real SIGKILL: the process gets no chance to say goodbye."""
        child = self.children[name]
        with contextlib.suppress(ProcessLookupError):
            child.process.kill()
        child.process.wait()
        _close_output(child)

    def stop_all(self) -> None:
        for child in self.children.values():
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        for name in list(self.children):
            self.stop(name)


def _pump(child: Child, lines: queue.Queue[str | None]) -> None:
    # Keep reading so a chatty child never blocks on a full pipe.
    assert child.process.stdout is not None
    with contextlib.suppress(ValueError, OSError):  # closed under us by stop(): we are done
        for line in child.process.stdout:
            child.output.append(line)
            if len(child.output) > 200:
                del child.output[:100]
            if not child.ready:
                child.ready = line.startswith(READY_PREFIX)
                lines.put(line)
            elif child.echo is not None:
                child.echo(line)
    child.drained.set()
    lines.put(None)


def _close_output(child: Child) -> None:
    # The pump thread sees end-of-file once the process is gone; closing our end
    # too keeps a long lab session from piling up open pipes.
    if child.process.stdout is not None and not child.process.stdout.closed:
        with contextlib.suppress(Exception):
            child.process.stdout.close()
