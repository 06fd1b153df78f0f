"""What every lab daemon does the same way: event loop, signals, readiness, dying with its parent.

The web lab (or the benchmark, or a test) starts daemons as child processes and
sets LB_LAB_PARENT to its own pid. A child then exits when that parent is gone,
even if the parent was SIGKILLed and had no chance to clean up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable

PARENT_ENV = "LB_LAB_PARENT"
READY_PREFIX = "LB-LAB-READY "
PARENT_POLL_S = 0.5


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop where the platform has uvloop, else the stock asyncio loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def report_ready(human: str, **addresses: str) -> None:
    """Print the human line, plus a machine line when a lab parent is listening."""
    print(human, flush=True)
    if os.environ.get(PARENT_ENV):
        print(READY_PREFIX + json.dumps(addresses), flush=True)


def lab_parent() -> int | None:
    """The pid of the lab process that started this one, if one did (LB_LAB_PARENT)."""
    parent = os.environ.get(PARENT_ENV, "")
    return int(parent) if parent.isdigit() else None


def die_with_parent() -> None:
    """For a daemon with a loop of its own (the web front): SIGTERM when its parent dies.

    Its loop checks `parent_gone` now and then too, the portable backstop.
    """
    _ask_kernel_for_parent_death_signal()


def parent_gone(parent: int | None) -> bool:
    """True once the lab parent `parent` (None: there was none) has gone."""
    return parent is not None and os.getppid() != parent


def _ask_kernel_for_parent_death_signal() -> None:
    # Linux only: the kernel sends SIGTERM the moment the parent dies. The pid
    # poll below is the portable backstop.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent:
            stop.set()
            return
        await asyncio.sleep(PARENT_POLL_S)


def run_daemon(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run `main(stop)` until SIGINT/SIGTERM or the lab parent going away."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = None
    parent = os.environ.get(PARENT_ENV)
    if parent and parent.isdigit():
        _ask_kernel_for_parent_death_signal()
        watcher = loop.create_task(_watch_parent(int(parent), stop))
    try:
        loop.run_until_complete(main(stop))
    except OSError as exc:  # typically: address already in use
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        if watcher:
            watcher.cancel()
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return 0
